#pragma once
// Objective: what one task kind trains for and how it is scored. It owns the loss, the metric,
// and the metric's state: integer counts that are summed over ranks and replicas before the
// score is computed, so a rank never contributes a local score (for detection: per-class
// matched and scored detections and ground-truth counts; never a local mAP).
// Classification is cross-entropy, scored by top-1 accuracy.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "gemel/config/workload.h"
#include "gemel/data/loader.h"
#include "gemel/models/model.h"

namespace gemel::train {

class Objective {
 public:
  virtual ~Objective() = default;
  // The metric's name, as results, eval and the trial table name the task's score ("top1").
  virtual std::string metric() const = 0;
  // The training loss of a batch (a scalar on the model's device).
  virtual torch::Tensor loss(const models::ModelOutput& output, const data::Batch& batch) const = 0;
  // The metric state: stateSize() counts, added to by every validation batch.
  virtual int stateSize() const = 0;
  virtual void accumulate(const models::ModelOutput& output, const data::Batch& batch,
                          int64_t* state) const = 0;
  // The score of a state summed over every rank and replica.
  virtual double score(const int64_t* state) const = 0;
};

// The objective of a task kind; detection is not trainable yet (ConfigError).
std::shared_ptr<const Objective> makeObjective(config::TaskKind kind);

}  // namespace gemel::train
