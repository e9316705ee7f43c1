#pragma once
// SGD with momentum, weight decay and Nesterov over every parameter at once: LibTorch's fused
// SGD kernel (one pass per tensor: decay, momentum, Nesterov and the update together) where a
// parameter, its gradient and its momentum share one memory layout, and multi-tensor
// (_foreach_) ops for the rest (a channels_last weight whose gradient is a contiguous view into
// a GradSync bucket). The same arithmetic as torch::optim::SGD (and PyTorch's foreach and fused
// SGD), so results match it.
#include <vector>

#include <torch/types.h>

namespace gemel::train {

struct SgdOptions {
  double lr = 0.01;
  double momentum = 0.9;
  double weight_decay = 0;
  double dampening = 0;
  bool nesterov = false;
};

class ForeachSgd {
 public:
  ForeachSgd(std::vector<torch::Tensor> params, SgdOptions options);
  // One step over the parameters that have gradients (all of them, in a joint step).
  void step();
  const SgdOptions& options() const { return options_; }

 private:
  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> momentum_;  // empty until the first step
  SgdOptions options_;
};

}  // namespace gemel::train
