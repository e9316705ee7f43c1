#pragma once
// Helpers of the detection end-to-end tests.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "gemel/data/dataset.h"
#include "gemel/io/results.h"
#include "gemel/models/state_dict.h"

namespace gemel::testing {

// The val split as gemel feeds it to the model (64 px images need no letterbox; mean 0, std 1),
// with dataset indices (the COCO image ids) and boxes (image, class, x1, y1, x2, y2); and the
// normalisation a Faster R-CNN's transform is to apply.
inline void writeValData(const std::string& dataset, const std::string& out,
                         const std::vector<double>& mean = {0, 0, 0},
                         const std::vector<double>& std = {1, 1, 1}) {
  const data::DatasetReader reader(dataset);
  const auto& info = reader.info();
  const int64_t n = reader.size("val");
  auto images = torch::empty({n, info.height, info.width, info.channels}, torch::kUInt8);
  reader.readImages("val", 0, n, images.data_ptr<uint8_t>());
  std::vector<float> rows;
  for (int64_t i = 0; i < n; ++i) {
    for (const auto& b : reader.boxes("val", i))
      rows.insert(rows.end(), {float(i), b.cls, b.x1, b.y1, b.x2, b.y2});
  }
  models::writeStateDict(
      out, {{"images", images.permute({0, 3, 1, 2}).to(torch::kFloat).div(255).contiguous()},
            {"index", torch::arange(n, torch::kLong)},
            {"boxes", torch::tensor(rows).view({-1, 6})},
            {"classes", torch::tensor(int64_t(info.classes.size()))},
            {"mean", torch::tensor(mean, torch::kDouble)},
            {"std", torch::tensor(std, torch::kDouble)}});
}

// Whether some shared block of `results` has members of both kinds: a module of the detector's
// under `detector` ("bags_rcnn:backbone.") and one of the classifier's under `classifier`.
inline bool sharesAcross(const io::Results& results, const std::string& detector,
                         const std::string& classifier) {
  for (const auto& block : results.shared) {
    bool d = false, c = false;
    for (const auto& m : block.members) {
      d = d || m.rfind(detector, 0) == 0;
      c = c || m.rfind(classifier, 0) == 0;
    }
    if (d && c) return true;
  }
  return false;
}

}  // namespace gemel::testing
