#include "gemel/train/joint_trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
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

JointTrainer::JointTrainer(std::vector<TaskRuntime*> tasks, TrainOptions options)
    : tasks_(std::move(tasks)), options_(std::move(options)) {}

std::vector<double> JointTrainer::validateAll() {
  std::vector<Accuracy> counts;
  for (auto* t : tasks_) counts.push_back(t->validate());
  if (accuracy_hook_) accuracy_hook_(counts);
  std::vector<double> out;
  for (const auto& c : counts) out.push_back(c.value());
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
      if (acc[i] < tasks_[i]->target_acc) return false;
    }
    return true;
  };

  std::vector<models::Model*> models;
  int64_t steps_per_epoch = 1;
  for (auto* t : tasks_) {
    models.push_back(&t->model());
    steps_per_epoch = std::max(steps_per_epoch, t->batchesPerEpoch());
  }
  const auto params = uniqueParameters(models);
  torch::optim::SGD optimizer(params, torch::optim::SGDOptions(options_.lr)
                                          .momentum(options_.momentum)
                                          .weight_decay(options_.weight_decay));
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
      weight[i] = std::min(std::pow(tasks_[i]->target_acc / a, 0.75), 10.0);
    }
  };
  refreshWeights();
  int64_t next_validation = std::max<int64_t>(1, steps_per_epoch / 2);
  int64_t last_validated = 0;
  bool stop = options_.early_stop && metAll(acc, false);
  double loss_sum = 0;
  int64_t loss_count = 0;

  while (!stop && r.steps < budget) {
    if (options_.seconds > 0 && seconds() >= options_.seconds) break;
    optimizer.zero_grad();
    torch::Tensor total;
    for (std::size_t i = 0; i < n; ++i) {
      if (r.dropped[i]) continue;
      const auto batch = tasks_[i]->nextTrainBatch();
      auto loss = tasks_[i]->trainLoss(batch) * weight[i];
      total = total.defined() ? total + loss : loss;
    }
    if (!total.defined()) break;  // every task dropped
    const double value = total.item<double>();
    if (!std::isfinite(value)) {
      r.nan_loss = true;
      log::warn("train", "{}: loss is {} at step {}; the trial fails", options_.label, value,
                r.steps);
      break;
    }
    total.backward();
    if (grad_hook_) grad_hook_(params);
    optimizer.step();
    ++r.steps;
    loss_sum += value;
    ++loss_count;

    const double s = seconds();
    if (r.steps % 5 == 0 || r.steps == budget) {
      const double rate = r.steps / std::max(s, 1e-9);
      log::progress("train",
                    format("{}: step {}/{} ({}%), {} steps/s, ETA {} s, loss {}", options_.label,
                           r.steps, budget, 100 * r.steps / std::max<int64_t>(budget, 1),
                           std::round(rate * 100) / 100,
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
      if (r.dropped[i] || acc[i] >= tasks_[i]->target_acc) continue;
      const double gap = tasks_[i]->target_acc - acc[i];
      const double lift = (acc[i] - start_acc[i]) / std::max(epochs_done, 1e-9);  // per epoch
      if (epochs_done >= 1.0 && (lift <= 0 || gap / lift > epochs_left)) {
        r.dropped[i] = true;
        log::info("train",
                  "{}: dropping task {}: accuracy {} vs target {}; at {} per epoch it cannot "
                  "close the gap in the {} epochs left",
                  options_.label, tasks_[i]->name(), round4(acc[i]), round4(tasks_[i]->target_acc),
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
        r.steps + std::max<int64_t>(1, static_cast<int64_t>(std::max(interval, 0.1) * steps_per_epoch));
  }
  if (r.steps > last_validated && !r.nan_loss) {
    acc = validateAll();
    ++r.validations;
  }
  log::progress("train", format("{}: {} steps in {} s", options_.label, r.steps,
                                std::round(seconds() * 10) / 10),
                true);
  r.accuracy = acc;
  for (std::size_t i = 0; i < n; ++i) r.met.push_back(!r.nan_loss && acc[i] >= tasks_[i]->target_acc);
  r.seconds = seconds();
  r.epochs = double(r.steps) / steps_per_epoch;
  return r;
}

}  // namespace gemel::train
