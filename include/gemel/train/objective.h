#pragma once
// Objective: what one task kind trains for and how it is scored. It owns the loss, the metric,
// and the metric's state: integer counts that are summed over ranks and replicas before the
// score is computed, so a rank never contributes a local score (for detection: per-class
// matched and scored detections and ground-truth counts; never a local mAP).
// Classification is cross-entropy, scored by top-1 accuracy; detection is the YOLOv3 loss
// (detection.h) or the sum of a Faster R-CNN's four losses, scored by COCO mAP.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "gemel/config/workload.h"
#include "gemel/data/loader.h"
#include "gemel/models/model.h"

namespace gemel::data {
class Draws;
}

namespace gemel::train {

// A metric's state over some validation images. `counts` are added up over ranks and replicas;
// `records` (recordSize() values each) are concatenated over them. The score is computed once,
// from the state of every image.
struct MetricState {
  std::vector<int64_t> counts;
  std::vector<int64_t> records;
  int64_t images = 0;  // the images scored (TaskRuntime::validate)
};

class Objective {
 public:
  virtual ~Objective() = default;
  // The metric's name, as results, eval and the trial table name the task's score ("top1",
  // "map50", "map").
  virtual std::string metric() const = 0;
  // The model's input for a batch (float [B, 3, S, S] on `device`): augmented with `draws`
  // (training; none without). May add what the loss and the metric need to the batch
  // (detection: the boxes' targets and each image's input map).
  virtual torch::Tensor prepare(data::Batch& batch, data::Draws* draws,
                                const torch::Device& device) const = 0;
  // The training loss of a prepared batch (a scalar on the model's device).
  virtual torch::Tensor loss(const models::ModelOutput& output, const data::Batch& batch) const = 0;
  virtual int stateSize() const = 0;  // counts
  virtual int recordSize() const { return 0; }
  MetricState emptyState() const {
    return {std::vector<int64_t>(static_cast<std::size_t>(stateSize()), 0), {}};
  }
  // Adds a prepared validation batch to the state.
  virtual void accumulate(const models::ModelOutput& output, const data::Batch& batch,
                          MetricState& state) const = 0;
  // The score of a state gathered from every rank and replica.
  virtual double score(const MetricState& state) const = 0;
};

// The objective of a task: its kind's loss and metric (`metric:` picks among the kind's).
std::shared_ptr<const Objective> makeObjective(const config::TaskConfig& task);

}  // namespace gemel::train
