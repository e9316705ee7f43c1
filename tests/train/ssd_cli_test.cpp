// Detection end to end with an SSD, as a user runs it (OpenCV builds the camera's frames).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <regex>

#include "cli_support.h"
#include "detection_support.h"
#include "fashion_workload.h"
#include "gemel/core/format.h"
#include "gemel/data/dataset.h"
#include "gemel/data/sources.h"
#include "gemel/io/results.h"
#include "test_support.h"

namespace gemel {
namespace {

using testing::gemel;
using testing::jsonNumber;
using testing::run;
using testing::shellQuote;
using testing::TempDir;
using testing::writeValData;
namespace fs = std::filesystem;

// Detection images as the original tool's cameras see objects: digits 2 and 9 from opencv-doc's
// digits.png, 26 to 38 px, two per 96x96 frame, each in its own half, with their exact boxes.
void writeDigitsCamera(const std::string& path, int64_t train, int64_t val) {
  const cv::Mat sheet =
      cv::imread(std::string(data::kOpenCVDataDir) + "/digits.png", cv::IMREAD_GRAYSCALE);
  ASSERT_EQ(sheet.cols, 2000);
  data::DatasetInfo info;
  info.kind = data::DatasetKind::kDetection;
  info.classes = {"two", "nine"};
  info.height = info.width = 96;
  data::DatasetWriter writer(path, info);
  std::mt19937 rng(11);
  for (const auto& [split, n] : {std::pair<std::string, int64_t>{"train", train}, {"val", val}}) {
    for (int64_t k = 0; k < n; ++k) {
      cv::Mat canvas(96, 96, CV_8UC1, cv::Scalar(30));
      std::vector<data::Box> boxes;
      for (int half = 0; half < 2; ++half) {
        const int cls = static_cast<int>(rng() % 2), side = 26 + 6 * static_cast<int>(rng() % 3);
        const int x = 48 * half + static_cast<int>(rng() % (49 - side));
        const int y = static_cast<int>(rng() % (97 - side));
        // digits.png: rows 5d..5d+4 hold digit d; train draws cells 0..399, val 400..499
        const int cell =
            split == "train" ? static_cast<int>(rng() % 400) : 400 + static_cast<int>(rng() % 100);
        const int d = cls == 0 ? 2 : 9;
        cv::Mat patch;
        cv::resize(sheet(cv::Rect(cell % 100 * 20, (5 * d + cell / 100) * 20, 20, 20)), patch,
                   cv::Size(side, side));
        patch.copyTo(canvas(cv::Rect(x, y, side, side)));
        boxes.push_back({float(cls), float(x), float(y), float(x + side), float(y + side)});
      }
      cv::Mat rgb;
      cv::cvtColor(canvas, rgb, cv::COLOR_GRAY2RGB);
      writer.addDetected(split, rgb.data, boxes);
    }
  }
  writer.commit();
}

// An SSDlite camera beside a MobileNetV3-Large classifier, the original Gemel's cross-task
// sharing (SSDlite's MobileNetV3 body with the classifier's), as a user runs it: gemel train ->
// merge -> eval -> export. The detector detects (unmerged mAP@0.5 floor 0.3); every trial
// shares layers between the two; torchvision's SSD loads the exported detector strictly and,
// scored with pycocotools on the val set, gets the mAP that gemel eval printed.
TEST(SsdCli, AnSsdliteBesideAMobileNetV3MergesAndExportsForTorchvision) {
  if (!data::haveOpenCV() || !fs::exists(std::string(data::kOpenCVDataDir) + "/digits.png")) {
    GTEST_SKIP() << "needs OpenCV and opencv-doc's digits.png";
  }
  TempDir dir;
  writeDigitsCamera(dir.file("plaza_digits_OD.h5"), 400, 80);
  testing::FashionWorkload w;
  // fp32, so that torchvision's fp32 scoring of the export agrees with gemel eval to 1e-4.
  w.header =
      "name: ssdmix\n"
      "precision: fp32\n"
      "defaults: {batch_size: 32, accuracy_target: 0.9}\n"
      "search: {strategy: greedy, epochs_per_trial: 1, lr: 0.005, max_trials: 2}\n";
  w.tasks = {{"shoes_a_mobilenet_v3_large", {5, 7, 9}, "mobilenet_v3_large"}};
  w.size = 32;
  // MobileNetV3 from scratch learns slowly: 600 images (190 steps) left it at chance, 1500 at
  // 0.61.
  w.max_train = 2000;
  w.max_val = 150;
  const auto yaml = testing::writeFashionWorkload(dir, "ssdmix.yaml", w);
  testing::writeText(yaml, testing::readText(yaml) +
                               "  - {name: plaza_digits_ssdlite, arch: "
                               "ssdlite320_mobilenet_v3_large, kind: detection, num_classes: 2, "
                               "image_size: 96, batch_size: 16, dataset: plaza_digits_OD.h5}\n");
  auto r = gemel(format("train --config {} --epochs 10 --lr 0.02 --out {}", shellQuote(yaml),
                        shellQuote(dir.file("trained"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = gemel(format("merge --config {} --out {} --fixed-steps 6",
                   shellQuote(dir.file("trained/ssdmix.trained.yaml")),
                   shellQuote(dir.file("merged"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto results = dir.file("merged/results.h5");
  EXPECT_TRUE(testing::sharesAcross(io::readResults(results), "plaza_digits_ssdlite:backbone.",
                                    "shoes_a_mobilenet_v3_large:features."))
      << r.output;

  r = gemel(format("eval --results {} --json", shellQuote(results)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto json = r.output.substr(r.output.find('{'));
  const double map50 = jsonNumber(json, "plaza_digits_ssdlite", "score");
  // It detects: 10 epochs on 400 frames gave 0.84 unmerged in the run this floor was set on.
  EXPECT_GE(jsonNumber(json, "plaza_digits_ssdlite", "unmerged_score"), 0.3) << json;
  EXPECT_GE(map50, jsonNumber(json, "plaza_digits_ssdlite", "target")) << json;
  EXPECT_GE(jsonNumber(json, "shoes_a_mobilenet_v3_large", "unmerged_score"), 0.8) << json;

  r = gemel(format("export --results {} --all --out {}", shellQuote(results),
                   shellQuote(dir.file("export"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  writeValData(dir.file("plaza_digits_OD.h5"), dir.file("val.pt"), {0.5, 0.5, 0.5},
               {0.5, 0.5, 0.5});
  r = run(format(
      "{} {} score ssdlite320_mobilenet_v3_large 3 96 96 {} {}", shellQuote(GEMEL_PYTHON),
      shellQuote(std::string(GEMEL_SOURCE_DIR) + "/tests/models/rcnn_ref.py"),
      shellQuote(dir.file("export/plaza_digits_ssdlite.pt")), shellQuote(dir.file("val.pt"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("\"map50\": ([0-9.eE+-]+)"))) << r.output;
  EXPECT_NEAR(std::stod(m[1]), map50, 1e-4) << r.output;
  std::printf("gemel eval mAP@0.5 %.6f; torchvision + pycocotools on the export: %s\n", map50,
              r.output.c_str());
}

}  // namespace
}  // namespace gemel
