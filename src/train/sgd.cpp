#include "gemel/train/sgd.h"

#include <torch/torch.h>

#include "gemel/core/error.h"

namespace gemel::train {

ForeachSgd::ForeachSgd(std::vector<torch::Tensor> params, SgdOptions options)
    : params_(std::move(params)), options_(options) {
  GEMEL_ASSERT(!options_.nesterov || (options_.momentum > 0 && options_.dampening == 0),
               "Nesterov momentum needs a momentum and no dampening");
}

namespace {

// Whether LibTorch's fused SGD kernel computes the right thing for this tensor: it walks
// parameter, gradient and momentum as flat memory, so all three must share one layout (a
// channels_last weight whose gradient is a contiguous bucket view must not go there).
bool fusable(const torch::Tensor& p, const torch::Tensor& g, const torch::Tensor& first) {
  return p.is_non_overlapping_and_dense() && g.strides() == p.strides() &&
         p.scalar_type() == first.scalar_type() && g.scalar_type() == p.scalar_type() &&
         p.device() == first.device() && g.device() == p.device();
}

}  // namespace

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
  const bool momentum = options_.momentum != 0;
  const bool first = momentum && momentum_.empty();
  GEMEL_ASSERT(first || !momentum || momentum_.size() == params.size(),
               "the set of parameters with gradients changed between steps");
  // Momentum buffers in each parameter's own layout; the first step fills them.
  if (first) {
    momentum_.reserve(params.size());
    for (const auto& p : params) momentum_.push_back(torch::empty_like(p));
  }
  const bool use_fused = options_.fused == SgdOptions::Fused::kOn ||
                         (options_.fused == SgdOptions::Fused::kAuto && params[0].is_cuda());
  std::vector<torch::Tensor> fp, fg, fm, rp, rg, rm;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const bool fused = use_fused && fusable(params[i], grads[i], params[0]);
    (fused ? fp : rp).push_back(params[i]);
    (fused ? fg : rg).push_back(grads[i]);
    if (momentum) (fused ? fm : rm).push_back(momentum_[i]);
  }
  if (!fp.empty()) {
    // One pass over each tensor: decay, momentum, Nesterov and the update in one kernel.
    at::_fused_sgd_(fp, fg, fm, options_.weight_decay, options_.momentum, options_.lr,
                    options_.dampening, options_.nesterov, /*maximize=*/false, first);
  }
  if (rp.empty()) return;
  // The rest: the same arithmetic in multi-tensor ops.
  // d = g + wd * p (a new list: the gradients themselves are left as they are)
  std::vector<torch::Tensor> d =
      options_.weight_decay != 0 ? torch::_foreach_add(rg, rp, options_.weight_decay) : rg;
  if (momentum) {
    if (first) {
      for (std::size_t k = 0; k < rm.size(); ++k) rm[k].copy_(d[k]);
    } else {
      torch::_foreach_mul_(rm, options_.momentum);
      torch::_foreach_add_(rm, d, 1 - options_.dampening);
    }
    d = options_.nesterov ? torch::_foreach_add(d, rm, options_.momentum) : rm;
  }
  torch::_foreach_add_(rp, d, -options_.lr);
}

}  // namespace gemel::train
