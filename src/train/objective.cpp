#include "gemel/train/objective.h"

#include <torch/torch.h>

#include "gemel/core/error.h"
#include "gemel/data/transforms.h"
#include "gemel/models/archs.h"
#include "gemel/models/darknet_cfg.h"
#include "gemel/train/detection.h"

namespace gemel::train {
namespace {

// Cross-entropy; top-1 accuracy from {correct, total}.
class Classification final : public Objective {
 public:
  explicit Classification(config::Transforms transforms) : transforms_(std::move(transforms)) {}
  std::string metric() const override { return "top1"; }
  torch::Tensor prepare(data::Batch& batch, data::Draws* draws,
                        const torch::Device& device) const override {
    return data::prepareImages(batch.images, transforms_, draws, device);
  }
  torch::Tensor loss(const models::ModelOutput& out, const data::Batch& batch) const override {
    return torch::nn::functional::cross_entropy(out.logits, batch.labels.to(out.logits.device()));
  }
  int stateSize() const override { return 2; }
  void accumulate(const models::ModelOutput& out, const data::Batch& batch,
                  MetricState& state) const override {
    const auto predicted = out.logits.argmax(1).cpu();
    state.counts[0] += predicted.eq(batch.labels).sum().item<int64_t>();
    state.counts[1] += batch.labels.size(0);
  }
  double score(const MetricState& state) const override {
    return state.counts[1] > 0 ? double(state.counts[0]) / double(state.counts[1]) : 0.0;
  }

 private:
  config::Transforms transforms_;
};

// A detection objective's metric: COCO mAP (map50 or map) from per-detection records (class,
// image, rank, score, matches) and per-class ground-truth counts.
class CocoScored : public Objective {
 public:
  explicit CocoScored(const config::TaskConfig& task)
      : classes_(task.num_classes), map50_(task.metric != "map") {}
  std::string metric() const override { return map50_ ? "map50" : "map"; }
  int stateSize() const override { return static_cast<int>(classes_); }
  int recordSize() const override { return kCocoRecordSize; }
  double score(const MetricState& state) const override {
    const auto ap = cocoScore(state.records, state.counts.data(), classes_);
    return map50_ ? ap.map50 : ap.map;
  }

 protected:
  int64_t classes_;
  bool map50_;
};

// The YOLOv3 loss, scored by COCO mAP.
class Detection final : public CocoScored {
 public:
  explicit Detection(const config::TaskConfig& task)
      : CocoScored(task),
        transforms_(task.transforms),
        size_(task.image_size),
        heads_(yoloHeads(models::darknetForArch(task.arch, task.num_classes))) {}
  torch::Tensor prepare(data::Batch& batch, data::Draws* draws,
                        const torch::Device& device) const override {
    return data::prepareDetection(batch, transforms_, size_, draws, device);
  }
  torch::Tensor loss(const models::ModelOutput& out, const data::Batch& batch) const override {
    return yoloLoss(out.logits, heads_, size_, batch.targets).total.squeeze();
  }
  void accumulate(const models::ModelOutput& out, const data::Batch& batch,
                  MetricState& state) const override {
    const auto kept =
        nonMaxSuppression(decodeYolo(out.logits.detach(), heads_, size_), NmsOptions{});
    for (std::size_t i = 0; i < kept.size(); ++i) {
      // Back to source pixels, where the ground truth is.
      const auto& m = batch.maps[i];
      auto d = kept[i].to(torch::kCPU, torch::kFloat).clone();
      auto x1 = (d.select(1, 0) - m.ox) / m.sx, x2 = (d.select(1, 2) - m.ox) / m.sx;
      d.select(1, 0).copy_(torch::min(x1, x2));
      d.select(1, 2).copy_(torch::max(x1, x2));
      d.select(1, 1).sub_(m.oy).div_(m.sy);
      d.select(1, 3).sub_(m.oy).div_(m.sy);
      cocoRecords(d, batch.boxes[i], batch.indices[i], classes_, state.records,
                  state.counts.data());
    }
  }

 private:
  config::Transforms transforms_;
  int64_t size_;
  std::vector<YoloHead> heads_;
};

// Faster R-CNN and SSD, as torchvision trains them: the model computes its losses (four; two)
// from each image's boxes, and the loss is their sum; the images go in as [0, 1] (the model
// normalises them) with the task's horizontal flip. Scored by COCO mAP from the model's detections,
// as Detection.
class RcnnDetection final : public CocoScored {
 public:
  explicit RcnnDetection(const config::TaskConfig& task)
      : CocoScored(task), transforms_(task.transforms) {
    transforms_.mean = {0.0};
    transforms_.std = {1.0};
    transforms_.crop_padding = 0;
  }
  torch::Tensor prepare(data::Batch& batch, data::Draws* draws,
                        const torch::Device& device) const override {
    data::Augmentation applied;
    auto x = data::prepareImages(batch.images, transforms_, draws, device, &applied);
    const int64_t h = batch.images.size(1), w = batch.images.size(2);
    batch.box_targets.clear();
    for (std::size_t i = 0; i < batch.boxes.size(); ++i) {
      std::vector<float> corners;
      std::vector<int64_t> labels;
      for (const auto& b : data::augmentBoxes(batch.boxes[i], applied, i, h, w)) {
        corners.insert(corners.end(), {b.x1, b.y1, b.x2, b.y2});
        labels.push_back(static_cast<int64_t>(b.cls) + 1);  // 0 is the background
      }
      batch.box_targets.push_back({torch::tensor(corners, torch::kFloat).view({-1, 4}).to(device),
                                   torch::tensor(labels, torch::kLong).to(device)});
    }
    return x;
  }
  torch::Tensor loss(const models::ModelOutput& out, const data::Batch&) const override {
    GEMEL_ASSERT(!out.losses.empty(), "a Faster R-CNN in training mode returns its losses");
    auto total = out.losses[0].second;
    for (std::size_t i = 1; i < out.losses.size(); ++i) total = total + out.losses[i].second;
    return total;
  }
  void accumulate(const models::ModelOutput& out, const data::Batch& batch,
                  MetricState& state) const override {
    GEMEL_ASSERT(out.detections.size() == batch.boxes.size(), "{} detections for {} images",
                 out.detections.size(), batch.boxes.size());
    for (std::size_t i = 0; i < out.detections.size(); ++i) {
      const auto& d = out.detections[i];
      // Rows (x1, y1, x2, y2, score, class from 0), in the image's pixels already.
      const auto rows = torch::cat({d.boxes.to(torch::kCPU, torch::kFloat),
                                    d.scores.to(torch::kCPU, torch::kFloat).unsqueeze(1),
                                    (d.labels.to(torch::kCPU) - 1).to(torch::kFloat).unsqueeze(1)},
                                   1);
      cocoRecords(rows, batch.boxes[i], batch.indices[i], classes_, state.records,
                  state.counts.data());
    }
  }

 private:
  config::Transforms transforms_;
};

}  // namespace

std::shared_ptr<const Objective> makeObjective(const config::TaskConfig& task) {
  switch (task.kind) {
    case config::TaskKind::kClassification:
      return std::make_shared<const Classification>(task.transforms);
    case config::TaskKind::kDetection:
      if (models::isTorchvisionDetectorArch(task.arch))
        return std::make_shared<const RcnnDetection>(task);
      return std::make_shared<const Detection>(task);
  }
  throw ConfigError(format("task '{}': unknown task kind", task.name));
}

}  // namespace gemel::train
