#pragma once
// TrainStep: the one joint training step of gemel (train, merge and bench all take it). Each
// step: zeroed gradients; one batch per active task, its augmented input and its loss, summed
// with per-task weights; one backward; the gradients made equal across ranks (RankSync); the
// fp16 gradient scaler where a task trains in fp16; one multi-tensor SGD step over the unique
// parameters (a tied tensor is entered once). The step does not wait on the host: the loss and
// a non-finite flag stay on the device until takePending().
//
// Graphed steps (StepMode::kGraphed, CUDA): the forward and backward are captured once and
// replayed where the shapes are static, after TrainStep::kGraphWarmups eager steps, and
// captured again when the set of active tasks changes or a gradient moved. kStaticInputs takes
// the same path without a graph, on any device (tests compare it with the eager step).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "gemel/data/loader.h"
#include "gemel/train/sgd.h"
#include "gemel/train/sync.h"

namespace gemel::train {

// What the step needs of a task: its batches, their augmented inputs, and the loss of its
// model (in train mode, in the task's precision) on such an input.
class Trainable {
 public:
  virtual ~Trainable() = default;
  virtual data::Batch nextTrainBatch() = 0;
  // On CUDA: start bringing the next batch to the device, beside the step in flight.
  virtual void stageNextBatch() {}
  // The step's augmented input (the batch gets what the loss needs).
  virtual torch::Tensor trainInput(data::Batch& batch) = 0;
  virtual torch::Tensor trainLossOn(const torch::Tensor& input, const data::Batch& prepared) = 0;
};

enum class StepMode { kEager, kGraphed, kStaticInputs };

struct StepOptions {
  SgdOptions sgd;
  StepMode mode = StepMode::kEager;
  bool fp16_scaler = false;    // a task trains in fp16: gradients through torch.amp's scaler
  bool channels_last = false;  // 4-d parameters in channels_last (the inputs come so)
  std::string label = "step";  // warnings
};

class TrainStep {
 public:
  static constexpr int kGraphWarmups = 3;

  // tasks: one entry per task of the trial, null where another rank trains it. params: the
  // unique trainable parameters of this rank's models.
  TrainStep(std::vector<Trainable*> tasks, std::vector<torch::Tensor> params, StepOptions options,
            RankSync& sync);
  ~TrainStep();
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  // The first half: zeroed gradients and sum_i weight_i * loss_i over the active tasks held
  // here (undefined when this rank trains none). A graphed step also runs its backward here.
  torch::Tensor forward(const std::vector<bool>& active, const std::vector<double>& weights);
  // The second half: backward (unless done), the gradient reduction, the optimizer step.
  void apply(const torch::Tensor& total);

  struct Pending {
    double mean_loss = 0;
    bool not_finite = false;
  };
  // The losses since the last call (one host synchronisation); nullopt when none.
  std::optional<Pending> takePending();
  int64_t graphedSteps() const { return graphed_steps_; }
  // The optimizer's step size from the next step on (warm-up).
  void setLr(double lr);
  const std::vector<torch::Tensor>& params() const { return params_; }

 private:
  struct Graph;
  torch::Tensor eagerForward(const std::vector<bool>& active, const std::vector<double>& weights);
  torch::Tensor graphedForward(const std::vector<bool>& active, const std::vector<double>& weights);
  void fillStaticInputs(const std::vector<bool>& active, const std::vector<torch::Tensor>& inputs,
                        const std::vector<data::Batch>& batches,
                        const std::vector<double>& weights);
  bool gradientsMoved() const;
  torch::Tensor eagerLoss(const std::vector<bool>& active, const std::vector<torch::Tensor>& inputs,
                          const std::vector<data::Batch>& batches,
                          const std::vector<double>& weights);
  void zeroGradients();
  void notePending(const torch::Tensor& total);

  std::vector<Trainable*> tasks_;
  std::vector<torch::Tensor> params_;
  StepOptions options_;
  RankSync& sync_;
  std::unique_ptr<ForeachSgd> optimizer_;
  torch::Tensor scale_, growth_;  // fp16: the scaler's scale and growth counter (device)
  std::unique_ptr<Graph> graph_;  // graphed modes
  struct Side;
  std::unique_ptr<Side> side_;  // graphed: the side stream the whole run takes
  bool backward_done_ = false;
  int64_t graphed_steps_ = 0;
  torch::Tensor pending_loss_, pending_bad_;
  int64_t pending_steps_ = 0;
};

}  // namespace gemel::train
