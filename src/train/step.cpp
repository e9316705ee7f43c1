#include "gemel/train/step.h"

#include <torch/torch.h>

#include "gemel/core/error.h"
#include "gemel/core/log.h"
#include "gemel/dist/grad_sync.h"
#include "gemel/train/cuda_graph.h"

namespace gemel::train {

RankSync& RankSync::local() {
  static LocalSync single;
  return single;
}

WorldSync::WorldSync(const dist::World& world, std::unique_ptr<dist::GradSync> grads,
                     std::unique_ptr<dist::GradSync> buffers)
    : world_(world), grads_(std::move(grads)), buffers_(std::move(buffers)) {}
WorldSync::~WorldSync() = default;

void WorldSync::reduceGradients(const std::vector<torch::Tensor>&) {
  if (grads_) grads_->reduceGradients();
}

void WorldSync::syncBuffers() {
  if (buffers_) buffers_->averageValues();
}

// The graphed step of one set of active tasks: static copies of each task's input, labels and
// loss weight (device tensors the graph reads), and the captured step.
struct TrainStep::Graph {
  std::vector<bool> active;  // the tasks it steps
  int warm = 0;              // eager steps taken since the set changed
  std::vector<torch::Tensor> input, labels, weight;
  std::unique_ptr<CapturedStep> step;
  std::vector<const void*> grads;  // each gradient's storage at capture: the graph writes there
};

struct TrainStep::Side {
  explicit Side(const torch::Device& device) : stream(device) {}
  SideStream stream;
};

TrainStep::TrainStep(std::vector<Trainable*> tasks, std::vector<torch::Tensor> params,
                     StepOptions options, RankSync& sync)
    : tasks_(std::move(tasks)),
      params_(std::move(params)),
      options_(std::move(options)),
      sync_(sync) {
  if (options_.channels_last) {
    // Tied tensors are fresh: put them (in place, so every model keeps them) in the format
    // the tasks' inputs come in.
    for (auto& p : params_) {
      if (p.dim() == 4 && !p.is_contiguous(torch::MemoryFormat::ChannelsLast))
        p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
    }
  }
  if (options_.fp16_scaler && !params_.empty()) {
    const auto opts = torch::TensorOptions().dtype(torch::kFloat).device(params_[0].device());
    scale_ = torch::full({1}, 65536.0, opts);
    growth_ = torch::zeros({1}, opts.dtype(torch::kInt));
  }
  if (!params_.empty()) optimizer_ = std::make_unique<ForeachSgd>(params_, options_.sgd);
  if (options_.mode != StepMode::kEager) {
    graph_ = std::make_unique<Graph>();
    // Graphed steps are captured on a side stream, and the whole run goes on it.
    if (!params_.empty()) side_ = std::make_unique<Side>(params_[0].device());
  }
}

TrainStep::~TrainStep() = default;

void TrainStep::zeroGradients() {
  // In place (never reset to undefined, as LibTorch 2.x's zero_grad() does): gradients may
  // be views into GradSync's buckets, or where a graph writes them.
  for (auto& p : params_) {
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
}

void TrainStep::notePending(const torch::Tensor& total) {
  if (!total.defined()) return;
  const auto value = total.detach();
  const auto bad = value.isfinite().logical_not();
  pending_loss_ = pending_loss_.defined() ? pending_loss_ + value : value.clone();
  pending_bad_ = pending_bad_.defined() ? pending_bad_.logical_or(bad) : bad;
  ++pending_steps_;
}

std::optional<TrainStep::Pending> TrainStep::takePending() {
  std::optional<Pending> out;
  if (pending_loss_.defined()) {
    out = Pending{pending_loss_.item<double>() / static_cast<double>(pending_steps_),
                  pending_bad_.item<bool>()};
  }
  pending_loss_ = torch::Tensor();
  pending_bad_ = torch::Tensor();
  pending_steps_ = 0;
  return out;
}

torch::Tensor TrainStep::forward(const std::vector<bool>& active,
                                 const std::vector<double>& weights) {
  GEMEL_ASSERT(active.size() == tasks_.size() && weights.size() == tasks_.size(),
               "TrainStep: {} tasks, {} flags, {} weights", tasks_.size(), active.size(),
               weights.size());
  backward_done_ = false;
  if (graph_) return graphedForward(active, weights);
  return eagerForward(active, weights);
}

torch::Tensor TrainStep::eagerForward(const std::vector<bool>& active,
                                      const std::vector<double>& weights) {
  zeroGradients();
  torch::Tensor total;
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    if (!active[i] || !tasks_[i]) continue;
    auto batch = tasks_[i]->nextTrainBatch();
    const auto x = tasks_[i]->trainInput(batch);
    auto loss = tasks_[i]->trainLossOn(x, batch) * weights[i];
    total = total.defined() ? total + loss : loss;
  }
  // CUDA: the next step's batches start for the device now, beside this step's kernels.
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    if (active[i] && tasks_[i]) tasks_[i]->stageNextBatch();
  }
  notePending(total);
  return total;
}

// Each active task's input is prepared eagerly (loader, keyed augmentation), copied into the
// graph's static tensors, and the captured forward and backward replayed. The first
// kGraphWarmups steps of a set of tasks run eagerly on the same inputs, as does a step whose
// shapes differ from the captured ones (a short last batch).
torch::Tensor TrainStep::graphedForward(const std::vector<bool>& requested,
                                        const std::vector<double>& weights) {
  auto& g = *graph_;
  const std::size_t n = tasks_.size();
  std::vector<bool> active(n);
  for (std::size_t i = 0; i < n; ++i) active[i] = requested[i] && tasks_[i];
  if (active != g.active) {  // the set changed: the graph steps the new one
    g = Graph();
    g.active = active;
    g.input.resize(n);
    g.labels.resize(n);
    g.weight.resize(n);
  }
  std::vector<data::Batch> batches(n);
  std::vector<torch::Tensor> inputs(n);
  bool fits = true;
  for (std::size_t i = 0; i < n; ++i) {
    if (!active[i]) continue;
    batches[i] = tasks_[i]->nextTrainBatch();
    inputs[i] = tasks_[i]->trainInput(batches[i]);
    const auto& s = g.input[i];
    fits = fits &&
           (!s.defined() || (s.sizes() == inputs[i].sizes() && s.strides() == inputs[i].strides() &&
                             s.scalar_type() == inputs[i].scalar_type()));
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (active[i]) tasks_[i]->stageNextBatch();
  }
  auto eager = [&] { return eagerLoss(active, inputs, batches, weights); };
  if (!fits) return eager();
  if (g.warm < kGraphWarmups) {
    auto total = eager();
    ++g.warm;
    return total;
  }
  fillStaticInputs(active, inputs, batches, weights);
  const bool moved = gradientsMoved();
  auto body = [&]() {
    zeroGradients();
    torch::Tensor total;
    for (std::size_t i = 0; i < n; ++i) {
      if (!active[i]) continue;
      data::Batch b;
      b.labels = g.labels[i];
      auto loss = tasks_[i]->trainLossOn(g.input[i], b) * g.weight[i];
      total = total.defined() ? total + loss : loss;
    }
    total.backward();
    return total.detach();
  };
  torch::Tensor total;
  if (options_.mode == StepMode::kStaticInputs) {
    total = body();
  } else {
    if (!g.step || moved) {
      try {
        g.step = std::make_unique<CapturedStep>(params_[0].device(), body);
      } catch (const Error& e) {
        log::warn("train", "{}: {}; the run goes on without CUDA graphs", options_.label, e.what());
        graph_.reset();
        if (side_) side_->stream.renew();
        return eager();
      }
      g.grads.clear();
      for (const auto& p : params_) g.grads.push_back(p.grad().data_ptr());
    }
    total = g.step->replay();
  }
  backward_done_ = true;
  ++graphed_steps_;
  notePending(total);
  return total;
}

// The eager step on prepared inputs: zeroed gradients and the weighted loss sum.
torch::Tensor TrainStep::eagerLoss(const std::vector<bool>& active,
                                   const std::vector<torch::Tensor>& inputs,
                                   const std::vector<data::Batch>& batches,
                                   const std::vector<double>& weights) {
  zeroGradients();
  torch::Tensor total;
  for (std::size_t i = 0; i < active.size(); ++i) {
    if (!active[i]) continue;
    auto loss = tasks_[i]->trainLossOn(inputs[i], batches[i]) * weights[i];
    total = total.defined() ? total + loss : loss;
  }
  notePending(total);
  return total;
}

// The graph's static tensors (made at the first capture, in the inputs' own shapes and memory
// formats) take this step's inputs, labels and loss weights.
void TrainStep::fillStaticInputs(const std::vector<bool>& active,
                                 const std::vector<torch::Tensor>& inputs,
                                 const std::vector<data::Batch>& batches,
                                 const std::vector<double>& weights) {
  auto& g = *graph_;
  for (std::size_t i = 0; i < active.size(); ++i) {
    if (!active[i]) continue;
    if (!g.step) {
      g.input[i] = torch::empty_like(inputs[i]);
      g.labels[i] = torch::empty_like(batches[i].labels, inputs[i].device());
      g.weight[i] = torch::empty({}, inputs[i].options().dtype(torch::kFloat));
    }
    g.input[i].copy_(inputs[i]);
    g.labels[i].copy_(batches[i].labels, /*non_blocking=*/true);
    g.weight[i].fill_(weights[i]);
  }
}

// The graph writes each gradient where it was at capture: it is captured again if one moved.
bool TrainStep::gradientsMoved() const {
  const auto& g = *graph_;
  if (g.grads.size() != params_.size()) return true;
  for (std::size_t k = 0; k < params_.size(); ++k) {
    if (params_[k].grad().data_ptr() != g.grads[k]) return true;
  }
  return false;
}

void TrainStep::setLr(double lr) {
  if (optimizer_) optimizer_->setLr(lr);
}

void TrainStep::apply(const torch::Tensor& total) {
  if (total.defined() && !backward_done_) (scale_.defined() ? total * scale_ : total).backward();
  // Parameters this rank did not use this step (a dropped task) get zero gradients, so that
  // every rank steps the same set of tensors.
  for (auto& p : params_) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
  }
  sync_.reduceGradients(params_);
  bool skip = false;
  if (scale_.defined()) {
    // Unscale; a step with an infinite or NaN gradient on any rank is skipped everywhere and
    // the scale halves; 2000 clean steps double it (torch.amp.GradScaler's defaults).
    auto found = torch::zeros({1}, scale_.options());
    std::vector<torch::Tensor> grads;
    for (auto& p : params_) grads.push_back(p.mutable_grad());
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found, scale_.reciprocal());
    skip = sync_.max(found.item<float>() > 0 ? 1 : 0) > 0;
    if (skip) found.fill_(1);
    at::_amp_update_scale_(scale_, growth_, found, 2.0, 0.5, 2000);
  }
  if (optimizer_ && !skip) optimizer_->step();
}

}  // namespace gemel::train
