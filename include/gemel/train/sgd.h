#pragma once
// SGD with momentum, weight decay and Nesterov over every parameter at once, in multi-tensor
// (_foreach_) ops, and on CUDA through LibTorch's fused SGD kernel (one pass per tensor:
// decay, momentum, Nesterov and the update together) wherever a parameter, its gradient and
// its momentum share one memory layout (a channels_last weight whose gradient is a contiguous
// view into a GradSync bucket stays in the multi-tensor ops: the fused kernel walks all three
// as the same flat array). The same arithmetic as torch::optim::SGD.
//
// Why the fused kernel is not the CPU default: it rounds some elements once where the
// multi-tensor ops round twice. That is within 1e-8 per step, but training feeds it back, and
// the short 12-epoch detector training of DetectionCli.MixedWorkload* went from learning to
// not learning (mAP@0.5 0.0083 against the 0.01 it needs) on that alone; the multi-tensor ops
// are bit for bit torch::optim::SGD's. On the CPU the fused kernel took a 56M-parameter step
// from about 530 ms to 180 ms (Python, 2 threads): `fused: on` gives it.
#include <vector>

#include <torch/types.h>

namespace gemel::train {

struct SgdOptions {
  double lr = 0.01;
  double momentum = 0.9;
  double weight_decay = 0;
  double dampening = 0;
  bool nesterov = false;
  enum class Fused { kAuto, kOn, kOff };
  Fused fused = Fused::kAuto;  // auto: on CUDA
};

class ForeachSgd {
 public:
  ForeachSgd(std::vector<torch::Tensor> params, SgdOptions options);
  // One step over the parameters that have gradients (all of them, in a joint step).
  void step();
  const SgdOptions& options() const { return options_; }
  void setLr(double lr) { options_.lr = lr; }

 private:
  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> momentum_;  // empty until the first step
  SgdOptions options_;
};

}  // namespace gemel::train
