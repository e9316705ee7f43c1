#pragma once
// JointTrainer: one trial of joint retraining (DESIGN.md "Joint training"). Every task takes one
// batch per step; the loss is sum_i w_i * L_i with w_i = min((target_i / acc_i)^0.75, 10)
// refreshed at each validation; one backward, an optional gradient hook (GradSync), one SGD
// step over the unique parameters (a tied tensor is entered once). Validation comes after
// min(1, gap / lift) of an epoch (at least 0.1); a task whose observed lift cannot close its gap
// in the budget left is dropped; the trial ends when every remaining task meets its target or
// the epoch/time budget is spent. A NaN or infinite loss ends the trial as a failure.
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "gemel/train/task.h"

namespace gemel::train {

struct TrainOptions {
  double lr = 0.01;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  double epochs = 4;   // budget: epochs of the largest task's shard
  double seconds = 0;  // budget: wall seconds (0: none)
  bool early_stop = true;        // end once every task meets its target
  bool adaptive = true;          // loss weights, validation cadence, dropping
  int64_t max_steps = 0;         // hard cap (0: none), for tests and benchmarks
  std::string label = "trial";   // progress lines
};

struct TrialResult {
  std::vector<double> accuracy;  // per task, in the order given, after the trial
  std::vector<bool> met;         // accuracy >= target
  std::vector<bool> dropped;
  bool nan_loss = false;
  int64_t steps = 0;
  int validations = 0;
  double seconds = 0;
  double epochs = 0;
};

// Called after backward, before the optimizer step: reduces gradients across ranks.
using GradHook = std::function<void(const std::vector<torch::Tensor>& params)>;
// Aggregates validation counts across ranks (identity on one process).
using AccuracyHook = std::function<void(std::vector<Accuracy>& per_task)>;

class JointTrainer {
 public:
  JointTrainer(std::vector<TaskRuntime*> tasks, TrainOptions options);
  void setGradHook(GradHook hook) { grad_hook_ = std::move(hook); }
  void setAccuracyHook(AccuracyHook hook) { accuracy_hook_ = std::move(hook); }
  // Validates every task (through the accuracy hook).
  std::vector<double> validateAll();
  TrialResult run();

 private:
  std::vector<TaskRuntime*> tasks_;
  TrainOptions options_;
  GradHook grad_hook_;
  AccuracyHook accuracy_hook_;
};

// Every trainable parameter of the models, each tensor once (tied tensors are one TensorImpl).
std::vector<torch::Tensor> uniqueParameters(const std::vector<models::Model*>& models);

}  // namespace gemel::train
