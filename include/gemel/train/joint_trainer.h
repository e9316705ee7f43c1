#pragma once
// JointTrainer: one trial of joint retraining (docs/merging.md). Every task takes one
// batch per step; the loss is sum_i w_i * L_i with w_i = min((target_i / acc_i)^0.75, 10)
// refreshed at each validation; one backward, gradient synchronisation across ranks, one SGD
// step over the unique parameters (a tied tensor is entered once). Validation comes after
// min(1, gap / lift) of an epoch (at least 0.25; 0.25 while a task is not improving). Early
// stop: after `drop_after_epochs` and two validations in training, a task whose projected score
// (its best lift per epoch, over the whole run or since the last validation, carried over the
// budget left in steps and seconds) misses its target is dropped; the trial ends when a dropped
// task was not a candidate (a model the trial cannot do without), when fewer than `min_candidates`
// candidates remain, when `end_after_collapses` dropped tasks are below their collapse floors, when
// every remaining task meets its target, or when the budget is spent. A NaN or infinite loss ends
// the trial as a failure.
//
// Distributed: the trainer sees every task of the trial, but only trains those held by this
// rank (`local`). Accuracy counts are summed over ranks and every stop decision is agreed on by
// all ranks (RankSync), so all ranks take the same decisions at the same step. The step itself
// is TrainStep (step.h).
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "gemel/merge/trial_rules.h"
#include "gemel/train/step.h"
#include "gemel/train/sync.h"
#include "gemel/train/task.h"

namespace gemel::train {

struct TrainOptions {
  double lr = 0.01;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  double epochs = 4;   // budget: epochs of the largest task's shard
  double seconds = 0;  // budget: wall seconds (0: none)
  // A hard end (a search's time budget): no step starts unless it and the validation after it
  // fit before it, at the step and validation times this run measured (before the first step,
  // the validation's alone). The end validation then finishes by about the deadline.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  bool early_stop = true;          // end once every task meets its target
  bool adaptive = true;            // loss weights, validation cadence, dropping
  int64_t max_steps = 0;           // hard cap (0: none), for tests and benchmarks
  double drop_after_epochs = 0.5;  // no task is dropped before this much training
  // > 0: the step size rises linearly from lr / steps to lr over this many epochs (training
  // from scratch: the first steps of an untrained network are the ones that diverge).
  double warmup_epochs = 0;
  // Training from scratch (gemel train): after the warm-up, the step follows a half cosine from
  // lr down to 0 at the step budget, so the last epochs settle instead of jumping about.
  bool cosine_decay = false;
  // Independent training (gemel train; tasks that share nothing): each task ends with the
  // weights of its best validation, not its last.
  bool keep_best = false;
  int min_candidates = 0;  // end when fewer candidate tasks remain (a trial: 2)
  // A dropped task that validates below its collapse floor (indexed by TrialTask::index; empty:
  // none) has collapsed. Once `end_after_collapses` tasks have (0: never), the trial ends: the
  // search retries a collapsed trial at a smaller step whatever the others reach, so training
  // them on is time spent for nothing.
  std::vector<double> collapse_floor;
  int end_after_collapses = 0;
  // CUDA graphs: on CUDA, the step's forward and backward are captured once and replayed where
  // the shapes are static (classifiers in fp32 or bf16, no dropout, full batches), after
  // kGraphWarmups eager steps, and captured again when a task is dropped. kStaticInputs takes
  // the same path without a graph, on any device (tests compare it with the eager step).
  // GEMEL_CUDA_GRAPHS=off in the environment turns kAuto off.
  enum class Capture { kOff, kAuto, kStaticInputs };
  Capture capture = Capture::kAuto;
  static constexpr int kGraphWarmups = TrainStep::kGraphWarmups;
  std::string label = "trial";  // progress lines

  // The workload's search settings: optimizer, and a trial's epoch and time budgets.
  static TrainOptions fromSearch(const config::SearchConfig& search);
};

struct TrialTask {
  int index = 0;  // in the workload
  std::string name;
  double target = 0;
  TaskRuntime* local = nullptr;  // null when another rank trains it
  double loss_scale = 1;         // 1 / replicas for a replicated task
  // The task kind's objective (every rank knows it, also for tasks trained elsewhere); null:
  // the local task's.
  std::shared_ptr<const Objective> objective;
  // One of the trial's own models, which the trial may go on without (partial confirmation);
  // dropping a task that is not ends the trial.
  bool candidate = false;
  // Where the trainer validates the task (its schedule and, with keep_best, its choice of
  // weights): the val split, or the held-out part of the train split (TaskRuntime::holdOut).
  EvalSplit validate_on = EvalSplit::kVal;
};

// The search's rules of a trial (merge/trial_rules.h), as `options` sets them.
merge::TrialRules rulesOf(const TrainOptions& options);

struct TrialResult {
  std::vector<double> scores;  // per task, in the order given, after the trial
  std::vector<bool> met;       // score >= target
  std::vector<bool> dropped;
  bool nan_loss = false;
  std::string ended;  // why the trial ended before its budget ("" when it ran it out)
  int64_t steps = 0;
  int64_t graphed_steps = 0;  // of `steps`, replayed as a CUDA graph (or on static inputs)
  int validations = 0;
  double seconds = 0;
  double epochs = 0;
  double validation_seconds = 0;  // the longest validation of the run
  double step_seconds = 0;        // a training step's mean wall time (0: no step ran)
};

// JointTrainer: one trial's joint retraining, as a step and a schedule.
//   step      TrainStep: one batch per active task on this rank, loss = sum w_i L_i, one
//             backward, the gradient all-reduce, one optimizer step over the unique
//             parameters; its loss is read back and agreed between ranks every 10 steps and
//             before each validation;
//   schedule  the budget (epochs, seconds, steps), the agreement of every rank to go on, the
//             adaptive validation cadence (after min(1, gap/lift) of an epoch), the loss
//             weights w_i = min((target_i/acc_i)^0.75, 10), dropping a task that cannot close
//             its gap, and early stop when every task meets its target.
class JointTrainer {
 public:
  // `sync` must outlive the trainer.
  JointTrainer(std::vector<TrialTask> tasks, TrainOptions options,
               RankSync& sync = RankSync::local());
  ~JointTrainer();
  // Scores of every task: each task's metric state summed over ranks, then scored.
  std::vector<double> validateAll();
  // The images each task's last validateAll scored, over every rank and replica.
  const std::vector<int64_t>& scoredImages() const { return scored_images_; }
  TrialResult run();

 private:
  struct Run;
  void prepare(Run& run);
  StepMode stepMode() const;
  bool agreeToGoOn(Run& run, double& loss);
  void validateTimed(Run& run);
  bool pastDeadline(Run& run);
  void logProgress(Run& run, double loss);
  bool validateAndReschedule(Run& run);
  void refreshWeights(Run& run) const;
  void keepBest(Run& run) const;
  void restoreBest(Run& run) const;

  std::vector<TrialTask> tasks_;
  TrainOptions options_;
  RankSync& sync_;
  std::vector<int64_t> scored_images_;
};

// Every trainable parameter of the models, each tensor once (tied tensors are one TensorImpl).
std::vector<torch::Tensor> uniqueParameters(const std::vector<models::Model*>& models);

}  // namespace gemel::train
