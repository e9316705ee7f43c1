#include "gemel/train/sgd.h"

#include <torch/torch.h>

#include "gemel/core/error.h"

namespace gemel::train {

ForeachSgd::ForeachSgd(std::vector<torch::Tensor> params, SgdOptions options)
    : params_(std::move(params)), options_(options) {
  GEMEL_ASSERT(!options_.nesterov || (options_.momentum > 0 && options_.dampening == 0),
               "Nesterov momentum needs a momentum and no dampening");
}

void ForeachSgd::step() {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> params, grads;
  params.reserve(params_.size());
  grads.reserve(params_.size());
  for (auto& p : params_) {
    if (!p.grad().defined()) continue;
    params.push_back(p);
    grads.push_back(p.grad());
  }
  if (params.empty()) return;
  GEMEL_ASSERT(momentum_.empty() || momentum_.size() == params.size(),
               "the set of parameters with gradients changed between steps");
  // d = g + wd * p (a new list: the gradients themselves are left as they are)
  std::vector<torch::Tensor> d = options_.weight_decay != 0
                                     ? torch::_foreach_add(grads, params, options_.weight_decay)
                                     : grads;
  if (options_.momentum != 0) {
    if (momentum_.empty()) {
      momentum_.reserve(d.size());
      for (const auto& t : d) momentum_.push_back(t.clone().detach());
    } else {
      torch::_foreach_mul_(momentum_, options_.momentum);
      torch::_foreach_add_(momentum_, d, 1 - options_.dampening);
    }
    if (options_.nesterov) {
      d = torch::_foreach_add(d, momentum_, options_.momentum);
    } else {
      d = momentum_;
    }
  }
  torch::_foreach_add_(params, d, -options_.lr);
}

}  // namespace gemel::train
