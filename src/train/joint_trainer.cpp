#include "gemel/train/joint_trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <unordered_set>

#include "gemel/core/error.h"
#include "gemel/core/log.h"

namespace gemel::train {
namespace {
double round4(double x) { return std::round(x * 1e4) / 1e4; }
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
  return o;
}

JointTrainer::JointTrainer(std::vector<TrialTask> tasks, TrainOptions options,
                           Collectives collectives)
    : tasks_(std::move(tasks)), options_(std::move(options)), coll_(std::move(collectives)) {
  if (!coll_.sum) coll_.sum = [](std::vector<int64_t>&) {};
  if (!coll_.max) coll_.max = [](int64_t v) { return v; };
}

std::vector<double> JointTrainer::validateAll() {
  if (coll_.sync_buffers) coll_.sync_buffers();
  std::vector<int64_t> counts(2 * tasks_.size(), 0);
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    if (!tasks_[i].local) continue;
    const auto a = tasks_[i].local->validate();
    counts[2 * i] = a.correct;
    counts[2 * i + 1] = a.total;
  }
  coll_.sum(counts);
  std::vector<double> out;
  for (std::size_t i = 0; i < tasks_.size(); ++i)
    out.push_back(counts[2 * i + 1] > 0 ? double(counts[2 * i]) / double(counts[2 * i + 1]) : 0.0);
  return out;
}

TrialResult JointTrainer::run() {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto n = tasks_.size();
  TrialResult r;
  r.dropped.assign(n, false);
  auto seconds = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  auto metAll = [&](const std::vector<double>& acc, bool only_active) {
    for (std::size_t i = 0; i < n; ++i) {
      if (only_active && r.dropped[i]) continue;
      if (acc[i] < tasks_[i].target) return false;
    }
    return true;
  };

  std::vector<models::Model*> models;
  int64_t local_steps = 1;
  for (auto& t : tasks_) {
    if (!t.local) continue;
    models.push_back(&t.local->model());
    local_steps = std::max(local_steps, t.local->batchesPerEpoch());
  }
  const int64_t steps_per_epoch = coll_.max(local_steps);
  auto params = uniqueParameters(models);
  std::unique_ptr<torch::optim::SGD> optimizer;
  if (!params.empty()) {
    optimizer =
        std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(options_.lr)
                                                        .momentum(options_.momentum)
                                                        .weight_decay(options_.weight_decay));
  }
  int64_t budget = static_cast<int64_t>(std::ceil(options_.epochs * steps_per_epoch));
  if (options_.max_steps > 0) budget = std::min(budget, options_.max_steps);

  auto acc = validateAll();
  ++r.validations;
  const auto start_acc = acc;
  std::vector<double> weight(n, 1.0);
  auto refreshWeights = [&] {
    if (!options_.adaptive) return;
    for (std::size_t i = 0; i < n; ++i) {
      const double a = std::max(acc[i], 1e-3);
      weight[i] = std::min(std::pow(tasks_[i].target / a, 0.75), 10.0);
    }
  };
  refreshWeights();
  int64_t next_validation = std::max<int64_t>(1, steps_per_epoch / 2);
  int64_t last_validated = 0;
  bool stop = options_.early_stop && metAll(acc, false);
  double loss_sum = 0;
  int64_t loss_count = 0;

  while (!stop && r.steps < budget) {
    // Every rank must agree to go on: a time limit hit here, or a NaN there, stops all of them.
    int64_t local_flag = options_.seconds > 0 && seconds() >= options_.seconds ? 1 : 0;
    // Zeroed in place (never reset to undefined, as LibTorch 2.x's zero_grad() does):
    // gradients may be views into GradSync's buckets.
    for (auto& p : params) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    torch::Tensor total;
    for (std::size_t i = 0; i < n; ++i) {
      if (r.dropped[i] || !tasks_[i].local) continue;
      const auto batch = tasks_[i].local->nextTrainBatch();
      auto loss = tasks_[i].local->trainLoss(batch) * (weight[i] * tasks_[i].loss_scale);
      total = total.defined() ? total + loss : loss;
    }
    double value = 0;
    if (total.defined()) {
      value = total.item<double>();
      if (!std::isfinite(value)) local_flag = 2;
    }
    const int64_t flag = coll_.max(local_flag);
    if (flag == 2) {
      r.nan_loss = true;
      log::warn("train", "{}: the loss is not finite at step {}; the trial fails", options_.label,
                r.steps);
      break;
    }
    if (flag == 1) break;
    if (total.defined()) total.backward();
    // Parameters this rank did not use this step (a dropped task) get zero gradients, so that
    // every rank and every LibTorch version steps the same set of tensors.
    for (auto& p : params) {
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    }
    if (coll_.reduce_gradients) coll_.reduce_gradients(params);
    if (optimizer) optimizer->step();
    ++r.steps;
    if (coll_.on_step) coll_.on_step(r.steps);
    loss_sum += value;
    ++loss_count;

    const double s = seconds();
    if (r.steps % 5 == 0 || r.steps == budget) {
      const double rate = r.steps / std::max(s, 1e-9);
      log::progress(
          "train",
          format("{}: step {}/{} ({}%), {} steps/s, ETA {} s, loss {}", options_.label, r.steps,
                 budget, 100 * r.steps / std::max<int64_t>(budget, 1), std::round(rate * 100) / 100,
                 static_cast<int64_t>((budget - r.steps) / std::max(rate, 1e-9)),
                 std::round(loss_sum / loss_count * 1000) / 1000),
          false);
      loss_sum = 0;
      loss_count = 0;
    }
    if (r.steps < next_validation && r.steps < budget) continue;

    acc = validateAll();
    ++r.validations;
    last_validated = r.steps;
    const double epochs_done = double(r.steps) / steps_per_epoch;
    const double epochs_left = double(budget - r.steps) / steps_per_epoch;
    if (options_.early_stop && metAll(acc, true)) break;
    double interval = 1.0;
    for (std::size_t i = 0; i < n && options_.adaptive; ++i) {
      if (r.dropped[i] || acc[i] >= tasks_[i].target) continue;
      const double gap = tasks_[i].target - acc[i];
      const double lift = (acc[i] - start_acc[i]) / std::max(epochs_done, 1e-9);  // per epoch
      if (epochs_done >= 1.0 && (lift <= 0 || gap / lift > epochs_left)) {
        r.dropped[i] = true;
        log::info("train",
                  "{}: dropping task {}: accuracy {} vs target {}; at {} per epoch it cannot "
                  "close the gap in the {} epochs left",
                  options_.label, tasks_[i].name, round4(acc[i]), round4(tasks_[i].target),
                  round4(lift), round4(epochs_left));
        continue;
      }
      if (lift > 0) interval = std::min(interval, gap / lift);
    }
    bool any_active = false;
    for (std::size_t i = 0; i < n; ++i) any_active = any_active || !r.dropped[i];
    if (!any_active) break;
    refreshWeights();
    next_validation =
        r.steps +
        std::max<int64_t>(1, static_cast<int64_t>(std::max(interval, 0.1) * steps_per_epoch));
  }
  if (r.steps > last_validated && !r.nan_loss) {
    acc = validateAll();
    ++r.validations;
  }
  log::progress(
      "train",
      format("{}: {} steps in {} s", options_.label, r.steps, std::round(seconds() * 10) / 10),
      true);
  r.accuracy = acc;
  for (std::size_t i = 0; i < n; ++i) r.met.push_back(!r.nan_loss && acc[i] >= tasks_[i].target);
  r.seconds = seconds();
  r.epochs = double(r.steps) / steps_per_epoch;
  return r;
}

}  // namespace gemel::train
