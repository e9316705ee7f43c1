#pragma once
// SGD with momentum, weight decay and Nesterov as multi-tensor (_foreach_) ops over every
// parameter at once: a handful of kernels per step instead of several per parameter. The same
// arithmetic as torch::optim::SGD (and PyTorch's foreach SGD), so results match it.
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
