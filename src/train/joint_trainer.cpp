#include "gemel/train/joint_trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <unordered_set>

#include "gemel/core/error.h"
#include "gemel/core/log.h"
#include "gemel/train/cuda_graph.h"
#include "gemel/train/sgd.h"

namespace gemel::train {
namespace {
double round4(double x) { return std::round(x * 1e4) / 1e4; }
// Steps between read-backs of the loss (and agreements between ranks to go on): the step
// itself never waits on the host.
constexpr int64_t kReadBackEvery = 10;
}  // namespace

std::vector<torch::Tensor> uniqueParameters(const std::vector<models::Model*>& models) {
  std::vector<torch::Tensor> out;
  std::unordered_set<const void*> seen;
  for (const auto* m : models) {
    for (const auto& [name, p] : m->namedParameters()) {
      if (p.requires_grad() && seen.insert(p.unsafeGetTensorImpl()).second) out.push_back(p);
    }
  }
  return out;
}

TrainOptions TrainOptions::fromSearch(const config::SearchConfig& search) {
  TrainOptions o;
  o.lr = search.lr;
  o.momentum = search.momentum;
  o.weight_decay = search.weight_decay;
  o.epochs = search.epochs_per_trial;
  o.seconds = search.seconds_per_trial;
  o.drop_after_epochs = search.drop_after_epochs;
  return o;
}

JointTrainer::JointTrainer(std::vector<TrialTask> tasks, TrainOptions options,
                           Collectives collectives)
    : tasks_(std::move(tasks)), options_(std::move(options)), coll_(std::move(collectives)) {
  if (!coll_.sum) coll_.sum = [](std::vector<int64_t>&) {};
  if (!coll_.concat) coll_.concat = [](std::vector<int64_t>&) {};
  if (!coll_.max) coll_.max = [](int64_t v) { return v; };
  const char* graphs = std::getenv("GEMEL_CUDA_GRAPHS");
  if (options_.capture == TrainOptions::Capture::kAuto && graphs &&
      (std::strcmp(graphs, "off") == 0 || std::strcmp(graphs, "0") == 0))
    options_.capture = TrainOptions::Capture::kOff;
}

namespace {

const Objective& objectiveOf(const TrialTask& t) {
  if (t.objective) return *t.objective;
  GEMEL_ASSERT(t.local != nullptr, "task {}: no objective and not trained here", t.name);
  return t.local->objective();
}

}  // namespace

std::vector<double> JointTrainer::validateAll() {
  if (coll_.sync_buffers) coll_.sync_buffers();
  // One vector of every task's metric counts, laid out alike on every rank, summed; and when
  // a task has records, one vector of (task, length, values...) per rank, concatenated.
  std::vector<std::size_t> offset;
  std::size_t size = 0;
  bool records = false;
  for (const auto& t : tasks_) {
    offset.push_back(size);
    size += static_cast<std::size_t>(objectiveOf(t).stateSize());
    records = records || objectiveOf(t).recordSize() > 0;
  }
  std::vector<int64_t> counts(size, 0), packed;
  std::vector<MetricState> states(tasks_.size());
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    states[i] = objectiveOf(tasks_[i]).emptyState();
    if (!tasks_[i].local) continue;
    const auto local = tasks_[i].local->validate();
    std::copy(local.counts.begin(), local.counts.end(),
              counts.begin() + static_cast<std::ptrdiff_t>(offset[i]));
    if (!local.records.empty()) {
      packed.push_back(static_cast<int64_t>(i));
      packed.push_back(static_cast<int64_t>(local.records.size()));
      packed.insert(packed.end(), local.records.begin(), local.records.end());
    }
  }
  coll_.sum(counts);
  if (records) {
    coll_.concat(packed);
    for (std::size_t at = 0; at + 1 < packed.size();) {
      const auto task = static_cast<std::size_t>(packed[at]);
      const auto n = static_cast<std::size_t>(packed[at + 1]);
      GEMEL_ASSERT(task < tasks_.size() && at + 2 + n <= packed.size(), "bad metric records");
      auto& r = states[task].records;
      r.insert(r.end(), packed.begin() + static_cast<std::ptrdiff_t>(at + 2),
               packed.begin() + static_cast<std::ptrdiff_t>(at + 2 + n));
      at += 2 + n;
    }
  }
  std::vector<double> out;
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    auto& s = states[i];
    std::copy(counts.begin() + static_cast<std::ptrdiff_t>(offset[i]),
              counts.begin() + static_cast<std::ptrdiff_t>(offset[i] + s.counts.size()),
              s.counts.begin());
    out.push_back(objectiveOf(tasks_[i]).score(s));
  }
  return out;
}

// The graphed step (TrainOptions::capture) of one set of active tasks: static copies of each
// task's input, labels and loss weight (device tensors the graph reads), and the captured step.
struct StepGraph {
  std::vector<bool> active;  // the tasks it steps
  int warm = 0;              // eager steps taken since the set changed
  std::vector<torch::Tensor> input, labels, weight;
  std::unique_ptr<CapturedStep> step;
  std::vector<const void*> grads;  // each gradient's storage at capture: the graph writes there
};

// The state of one run() of the schedule.
struct JointTrainer::Run {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  TrialResult result;
  std::vector<torch::Tensor> params;  // unique parameters of this rank's models
  std::unique_ptr<ForeachSgd> optimizer;
  // fp16: the gradient scaler's scale and growth counter (on the device).
  bool scaled = false;
  torch::Tensor scale, growth;
  int64_t steps_per_epoch = 1, budget = 0;
  std::vector<double> acc, start_acc, weight;
  int64_t next_validation = 0, last_validated = 0;
  // The losses since the last read-back, summed on the device, and whether any was not
  // finite: read (one host synchronisation) and agreed between ranks only on the cadence.
  torch::Tensor pending_loss, pending_bad;
  int64_t pending_steps = 0;
  // Graphed steps: their state (null: eager steps), the side stream they are captured on, and
  // whether this step's backward already ran (in the graph).
  std::unique_ptr<StepGraph> graph;
  SideStream* side = nullptr;
  bool backward_done = false;
  // keep_best: per task, the best score validated and that moment's weights (this rank's).
  std::vector<double> best_score;
  std::vector<models::StateDict> best_state;

  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  // The step's loss joins those since the last read-back (on the device).
  void notePending(const torch::Tensor& total) {
    if (!total.defined()) return;
    const auto value = total.detach();
    const auto bad = value.isfinite().logical_not();
    pending_loss = pending_loss.defined() ? pending_loss + value : value.clone();
    pending_bad = pending_bad.defined() ? pending_bad.logical_or(bad) : bad;
    ++pending_steps;
  }
};

JointTrainer::~JointTrainer() = default;

namespace {

bool metAll(const std::vector<TrialTask>& tasks, const std::vector<double>& acc,
            const std::vector<bool>& dropped, bool only_active) {
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    if (only_active && dropped[i]) continue;
    if (acc[i] < tasks[i].target) return false;
  }
  return true;
}

}  // namespace

void JointTrainer::prepare(Run& run) {
  std::vector<models::Model*> models;
  int64_t local_steps = 1;
  for (auto& t : tasks_) {
    if (!t.local) continue;
    models.push_back(&t.local->model());
    local_steps = std::max(local_steps, t.local->batchesPerEpoch());
  }
  run.steps_per_epoch = coll_.max(local_steps);
  run.params = uniqueParameters(models);
  bool channels_last = false;
  for (auto& t : tasks_) {
    if (!t.local) continue;
    channels_last = channels_last || t.local->channelsLast();
    run.scaled = run.scaled || t.local->precision() == Precision::kFp16;
  }
  if (channels_last) {
    // Tied tensors are fresh: put them (in place, so every model keeps them) in the format
    // the tasks' inputs come in.
    for (auto& p : run.params) {
      if (p.dim() == 4 && !p.is_contiguous(torch::MemoryFormat::ChannelsLast))
        p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
    }
  }
  if (run.scaled && !run.params.empty()) {
    const auto opts = torch::TensorOptions().dtype(torch::kFloat).device(run.params[0].device());
    run.scale = torch::full({1}, 65536.0, opts);
    run.growth = torch::zeros({1}, opts.dtype(torch::kInt));
  }
  if (!run.params.empty()) {
    SgdOptions o;
    o.lr = options_.lr;
    o.momentum = options_.momentum;
    o.weight_decay = options_.weight_decay;
    run.optimizer = std::make_unique<ForeachSgd>(run.params, o);
  }
  run.budget = static_cast<int64_t>(std::ceil(options_.epochs * run.steps_per_epoch));
  if (options_.max_steps > 0) run.budget = std::min(run.budget, options_.max_steps);
  run.result.dropped.assign(tasks_.size(), false);
  run.weight.assign(tasks_.size(), 1.0);
  run.next_validation = std::max<int64_t>(1, run.steps_per_epoch / 2);
  if (capturable()) run.graph = std::make_unique<StepGraph>();
}

// Whether the step can be graphed: CUDA (or kStaticInputs), and every local task a classifier
// with static shapes and no host work in its loss: fp32 or bf16 (fp16's gradient scaler reads
// the host), no dropout (its generator is reseeded per step).
bool JointTrainer::capturable() const {
  if (options_.capture == TrainOptions::Capture::kOff) return false;
  bool any = false;
  for (const auto& t : tasks_) {
    if (!t.local) continue;
    any = true;
    if (options_.capture == TrainOptions::Capture::kAuto &&
        !(t.local->device().is_cuda() && cudaGraphsAvailable()))
      return false;
    if (t.local->config().kind != config::TaskKind::kClassification ||
        t.local->precision() == Precision::kFp16 || t.local->model().hasDropout())
      return false;
  }
  return any;
}

void JointTrainer::refreshWeights(Run& run) const {
  if (!options_.adaptive) return;
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    const double a = std::max(run.acc[i], 1e-3);
    run.weight[i] = std::min(std::pow(tasks_[i].target / a, 0.75), 10.0);
  }
}

TrialResult JointTrainer::run() {
  Run run;
  prepare(run);
  // Graphed steps are captured on a side stream, and the whole trial runs on it.
  std::optional<SideStream> side;
  if (run.graph && !run.params.empty()) {
    side.emplace(run.params[0].device());
    run.side = &*side;
  }
  auto& r = run.result;
  run.acc = validateAll();
  ++r.validations;
  keepBest(run);
  run.start_acc = run.acc;
  refreshWeights(run);
  bool go_on = !(options_.early_stop && metAll(tasks_, run.acc, r.dropped, false));
  if (!go_on) r.ended = "every task meets its target before training";
  while (go_on && r.steps < run.budget) {
    const auto total = forward(run);
    const int64_t step = r.steps + 1;
    const bool validating = step >= run.next_validation || step >= run.budget;
    if (validating || step % kReadBackEvery == 0) {
      double loss = 0;
      if (!agreeToGoOn(run, loss)) break;
      logProgress(run, loss);
    }
    backwardAndStep(run, total);
    if (!validating) continue;
    go_on = validateAndReschedule(run);
  }
  if (r.steps > run.last_validated && !r.nan_loss) {
    run.acc = validateAll();
    ++r.validations;
    keepBest(run);
  }
  if (options_.keep_best && !r.nan_loss) restoreBest(run);
  log::progress("train",
                format("{}: {} steps in {} s{}", options_.label, r.steps,
                       std::round(run.seconds() * 10) / 10,
                       r.graphed_steps > 0 ? format(" ({} replayed as a CUDA graph)", r.graphed_steps)
                                           : std::string()),
                true);
  r.scores = run.acc;
  for (std::size_t i = 0; i < tasks_.size(); ++i)
    r.met.push_back(!r.nan_loss && run.acc[i] >= tasks_[i].target);
  r.seconds = run.seconds();
  r.epochs = double(r.steps) / run.steps_per_epoch;
  return r;
}

// The step's forward half: zeroed gradients, one batch per active local task, the weighted
// loss sum (undefined when this rank trains nothing this step).
torch::Tensor JointTrainer::forward(Run& run) {
  run.backward_done = false;
  if (run.graph) return graphedForward(run);
  // (The loss is kept on the device: accumulated below, read back on the cadence.)
  // Zeroed in place (never reset to undefined, as LibTorch 2.x's zero_grad() does):
  // gradients may be views into GradSync's buckets.
  for (auto& p : run.params) {
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
  torch::Tensor total;
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    if (run.result.dropped[i] || !tasks_[i].local) continue;
    const auto batch = tasks_[i].local->nextTrainBatch();
    auto loss = tasks_[i].local->trainLoss(batch) * (run.weight[i] * tasks_[i].loss_scale);
    total = total.defined() ? total + loss : loss;
  }
  // CUDA: the next step's batches start for the device now, beside this step's kernels.
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    if (!run.result.dropped[i] && tasks_[i].local) tasks_[i].local->stageNextBatch();
  }
  run.notePending(total);
  return total;
}

// forward() for graphed steps: each active task's input is prepared eagerly (loader, keyed
// augmentation), copied into the graph's static tensors, and the captured forward and backward
// replayed. The first kGraphWarmups steps of a set of tasks run eagerly on the same inputs,
// as does a step whose shapes differ from the captured ones (a short last batch).
torch::Tensor JointTrainer::graphedForward(Run& run) {
  auto& g = *run.graph;
  const std::size_t n = tasks_.size();
  std::vector<bool> active(n);
  for (std::size_t i = 0; i < n; ++i) active[i] = !run.result.dropped[i] && tasks_[i].local;
  if (active != g.active) {  // a task was dropped: the graph steps the rest
    g = StepGraph();
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
    batches[i] = tasks_[i].local->nextTrainBatch();
    inputs[i] = tasks_[i].local->trainInput(batches[i]);
    const auto& s = g.input[i];
    fits = fits && (!s.defined() || (s.sizes() == inputs[i].sizes() &&
                                     s.strides() == inputs[i].strides() &&
                                     s.scalar_type() == inputs[i].scalar_type()));
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (active[i]) tasks_[i].local->stageNextBatch();
  }
  auto zeroGradients = [&run] {
    for (auto& p : run.params) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
  };
  auto eager = [&]() {
    zeroGradients();
    torch::Tensor total;
    for (std::size_t i = 0; i < n; ++i) {
      if (!active[i]) continue;
      auto loss = tasks_[i].local->trainLossOn(inputs[i], batches[i]) *
                  (run.weight[i] * tasks_[i].loss_scale);
      total = total.defined() ? total + loss : loss;
    }
    run.notePending(total);
    return total;
  };
  if (!fits) return eager();
  if (g.warm < TrainOptions::kGraphWarmups) {
    auto total = eager();
    ++g.warm;
    return total;
  }
  if (!g.step) {  // the static tensors, in the inputs' own shapes and memory formats
    for (std::size_t i = 0; i < n; ++i) {
      if (!active[i]) continue;
      g.input[i] = torch::empty_like(inputs[i]);
      g.labels[i] = torch::empty_like(batches[i].labels, inputs[i].device());
      g.weight[i] = torch::empty({}, inputs[i].options().dtype(torch::kFloat));
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!active[i]) continue;
    g.input[i].copy_(inputs[i]);
    g.labels[i].copy_(batches[i].labels, /*non_blocking=*/true);
    g.weight[i].fill_(run.weight[i] * tasks_[i].loss_scale);
  }
  // The graph writes each gradient where it was at capture: capture again if one moved.
  bool moved = g.grads.size() != run.params.size();
  for (std::size_t k = 0; k < run.params.size() && !moved; ++k)
    moved = run.params[k].grad().data_ptr() != g.grads[k];
  auto body = [&]() {
    zeroGradients();
    torch::Tensor total;
    for (std::size_t i = 0; i < n; ++i) {
      if (!active[i]) continue;
      data::Batch b;
      b.labels = g.labels[i];
      auto loss = tasks_[i].local->trainLossOn(g.input[i], b) * g.weight[i];
      total = total.defined() ? total + loss : loss;
    }
    total.backward();
    return total.detach();
  };
  torch::Tensor total;
  if (options_.capture == TrainOptions::Capture::kStaticInputs) {
    total = body();
  } else {
    if (!g.step || moved) {
      try {
        g.step = std::make_unique<CapturedStep>(run.params[0].device(), body);
      } catch (const Error& e) {
        log::warn("train", "{}: {}; the trial goes on without CUDA graphs", options_.label,
                  e.what());
        run.graph.reset();
        if (run.side) run.side->renew();
        return eager();
      }
      g.grads.clear();
      for (const auto& p : run.params) g.grads.push_back(p.grad().data_ptr());
    }
    total = g.step->replay();
  }
  run.backward_done = true;
  ++run.result.graphed_steps;
  run.notePending(total);
  return total;
}

// On the cadence: the losses since the last read-back come to the host, and every rank must
// agree to go on: a time limit hit here, or a non-finite loss there, stops all of them.
bool JointTrainer::agreeToGoOn(Run& run, double& loss) {
  int64_t local_flag = options_.seconds > 0 && run.seconds() >= options_.seconds ? 1 : 0;
  if (run.pending_loss.defined()) {
    loss = run.pending_loss.item<double>() / static_cast<double>(run.pending_steps);
    if (run.pending_bad.item<bool>()) local_flag = 2;
  }
  run.pending_loss = torch::Tensor();
  run.pending_bad = torch::Tensor();
  run.pending_steps = 0;
  const int64_t flag = coll_.max(local_flag);
  if (flag == 2) {
    run.result.nan_loss = true;
    log::warn("train", "{}: the loss is not finite by step {}; the trial fails", options_.label,
              run.result.steps + 1);
  }
  return flag == 0;
}

// The step's second half: backward, the gradient all-reduce, the optimizer step.
void JointTrainer::backwardAndStep(Run& run, const torch::Tensor& total) {
  if (total.defined() && !run.backward_done) (run.scaled ? total * run.scale : total).backward();
  // Parameters this rank did not use this step (a dropped task) get zero gradients, so that
  // every rank steps the same set of tensors.
  for (auto& p : run.params) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
  }
  if (coll_.reduce_gradients) coll_.reduce_gradients(run.params);
  bool skip = false;
  if (run.scaled && !run.params.empty()) {
    // Unscale; a step with an infinite or NaN gradient on any rank is skipped everywhere and
    // the scale halves; 2000 clean steps double it (torch.amp.GradScaler's defaults).
    auto found = torch::zeros({1}, run.scale.options());
    std::vector<torch::Tensor> grads;
    for (auto& p : run.params) grads.push_back(p.mutable_grad());
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found, run.scale.reciprocal());
    skip = coll_.max(found.item<float>() > 0 ? 1 : 0) > 0;
    if (skip) found.fill_(1);
    at::_amp_update_scale_(run.scale, run.growth, found, 2.0, 0.5, 2000);
  }
  if (run.optimizer && !skip) run.optimizer->step();
  ++run.result.steps;
  if (coll_.on_step) coll_.on_step(run.result.steps);
}

void JointTrainer::logProgress(Run& run, double loss) {
  const auto steps = run.result.steps + 1;  // counting the step about to be applied
  const double rate = steps / std::max(run.seconds(), 1e-9);
  log::progress("train",
                format("{}: step {}/{} ({}%), {} steps/s, ETA {} s, loss {}", options_.label, steps,
                       run.budget, 100 * steps / std::max<int64_t>(run.budget, 1),
                       std::round(rate * 100) / 100,
                       static_cast<int64_t>((run.budget - steps) / std::max(rate, 1e-9)),
                       std::round(loss * 1000) / 1000),
                false);
}

void JointTrainer::keepBest(Run& run) const {
  if (!options_.keep_best) return;
  run.best_score.resize(tasks_.size(), -1);
  run.best_state.resize(tasks_.size());
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    if (run.acc[i] <= run.best_score[i]) continue;
    run.best_score[i] = run.acc[i];
    run.best_state[i].clear();
    if (!tasks_[i].local) continue;
    for (const auto& [name, t] : tasks_[i].local->model().stateDict())
      run.best_state[i].emplace_back(name, t.detach().clone());
  }
}

void JointTrainer::restoreBest(Run& run) const {
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    if (run.acc[i] >= run.best_score[i]) continue;
    log::info("train", "{}: task {} keeps its best validated weights ({} against {} at the end)",
              options_.label, tasks_[i].name, round4(run.best_score[i]), round4(run.acc[i]));
    run.acc[i] = run.best_score[i];
    if (tasks_[i].local)
      tasks_[i].local->model().loadStateDict(run.best_state[i], {false, tasks_[i].name});
  }
}

// Validates, then decides what comes next: drop tasks whose projected score misses their
// target, end the trial when it cannot succeed or has succeeded, refresh the loss weights, and
// schedule the next validation. Returns false when the trial should end.
bool JointTrainer::validateAndReschedule(Run& run) {
  auto& r = run.result;
  const auto previous = run.acc;
  const double previous_epochs = double(run.last_validated) / run.steps_per_epoch;
  run.acc = validateAll();
  ++r.validations;
  keepBest(run);
  run.last_validated = r.steps;
  const double epochs_done = double(r.steps) / run.steps_per_epoch;
  // The budget left, in epochs: steps, and seconds at the rate so far (the slowest rank's
  // clock, so that every rank takes the same decision).
  double steps_left = double(run.budget - r.steps);
  if (options_.seconds > 0) {
    const double elapsed = double(coll_.max(static_cast<int64_t>(run.seconds() * 1000))) / 1000;
    const double rate = r.steps / std::max(elapsed, 1e-9);
    steps_left = std::min(steps_left, std::max(0.0, options_.seconds - elapsed) * rate);
  }
  const double epochs_left = steps_left / run.steps_per_epoch;
  double interval = 1.0;
  for (std::size_t i = 0; i < tasks_.size() && options_.adaptive; ++i) {
    const double acc = run.acc[i];
    if (r.dropped[i] || acc >= tasks_[i].target) continue;
    const double gap = tasks_[i].target - acc;
    // The best lift per epoch seen: over the whole run, or since the last validation.
    double lift = (acc - run.start_acc[i]) / std::max(epochs_done, 1e-9);
    if (epochs_done > previous_epochs) {
      lift = std::max(lift, (acc - previous[i]) / (epochs_done - previous_epochs));
    }
    // (Scores are fractions: no projection goes past 1.)
    const double projected = std::min(1.0, acc + std::max(lift, 0.0) * epochs_left);
    // Not on the first validation of the run: a trial's new sharing often costs accuracy at
    // first, and the trend after that shock is what the projection must see.
    const bool trend = r.validations >= 3;
    if (trend && epochs_done >= options_.drop_after_epochs && projected < tasks_[i].target) {
      r.dropped[i] = true;
      log::info("train",
                "{}: dropping task {}: {} against a target of {}; at its best lift of {} per "
                "epoch it would reach {} in the {} epochs left",
                options_.label, tasks_[i].name, round4(acc), round4(tasks_[i].target), round4(lift),
                round4(projected), round4(epochs_left));
      continue;
    }
    // A task not improving is looked at again soon: it may be dropped, or be recovering.
    interval = std::min(interval, lift > 0 ? gap / lift : 0.25);
  }
  // Whether the trial can still succeed, or already has.
  int candidates = 0;
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    if (r.dropped[i] && !tasks_[i].candidate) {
      r.ended = format("task {} cannot reach its target, and the trial needs it", tasks_[i].name);
    }
    candidates += !r.dropped[i] && tasks_[i].candidate;
  }
  if (r.ended.empty() && candidates < options_.min_candidates) {
    r.ended = format("{} of the trial's models can still reach their targets, fewer than {}",
                     candidates, options_.min_candidates);
  }
  if (r.ended.empty() && std::all_of(r.dropped.begin(), r.dropped.end(), [](bool d) { return d; }))
    r.ended = "no task can reach its target";
  if (r.ended.empty() && options_.early_stop && metAll(tasks_, run.acc, r.dropped, true)) {
    r.ended = "every remaining task meets its target";
  }
  if (!r.ended.empty()) {
    log::info("train", "{}: ends at step {}: {}", options_.label, r.steps, r.ended);
    return false;
  }
  refreshWeights(run);
  run.next_validation =
      r.steps +
      std::max<int64_t>(1, static_cast<int64_t>(std::max(interval, 0.25) * run.steps_per_epoch));
  return true;
}

}  // namespace gemel::train
