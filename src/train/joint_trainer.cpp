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
#include "gemel/core/format.h"
#include "gemel/core/log.h"
#include "gemel/train/cuda_graph.h"

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

JointTrainer::JointTrainer(std::vector<TrialTask> tasks, TrainOptions options, RankSync& sync)
    : tasks_(std::move(tasks)), options_(std::move(options)), sync_(sync) {
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
  sync_.syncBuffers();
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
  // (then each task's scored images)
  std::vector<int64_t> counts(size + tasks_.size(), 0), packed;
  std::vector<MetricState> states(tasks_.size());
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    states[i] = objectiveOf(tasks_[i]).emptyState();
    if (!tasks_[i].local) continue;
    const auto local = tasks_[i].local->validate(tasks_[i].validate_on);
    std::copy(local.counts.begin(), local.counts.end(),
              counts.begin() + static_cast<std::ptrdiff_t>(offset[i]));
    counts[size + i] = local.images;
    if (!local.records.empty()) {
      packed.push_back(static_cast<int64_t>(i));
      packed.push_back(static_cast<int64_t>(local.records.size()));
      packed.insert(packed.end(), local.records.begin(), local.records.end());
    }
  }
  sync_.sum(counts);
  if (records) {
    sync_.concat(packed);
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
  scored_images_.assign(counts.begin() + static_cast<std::ptrdiff_t>(size), counts.end());
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    auto& s = states[i];
    s.images = scored_images_[i];
    std::copy(counts.begin() + static_cast<std::ptrdiff_t>(offset[i]),
              counts.begin() + static_cast<std::ptrdiff_t>(offset[i] + s.counts.size()),
              s.counts.begin());
    out.push_back(objectiveOf(tasks_[i]).score(s));
  }
  return out;
}

// The state of one run() of the schedule.
struct JointTrainer::Run {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  TrialResult result;
  std::unique_ptr<TrainStep> step;
  int64_t steps_per_epoch = 1, budget = 0;
  std::vector<double> acc, start_acc, weight;
  int64_t next_validation = 0, last_validated = 0;
  double step_seconds = 0;  // summed over the steps timed (validation excluded)
  int64_t steps_timed = 0;
  // keep_best: per task, the best score validated and that moment's weights (this rank's).
  std::vector<double> best_score;
  std::vector<models::StateDict> best_state;

  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
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
  std::vector<Trainable*> trainables;
  StepOptions so;
  so.sgd.lr = options_.lr;
  so.sgd.momentum = options_.momentum;
  so.sgd.weight_decay = options_.weight_decay;
  so.mode = stepMode();
  so.label = options_.label;
  int64_t local_steps = 1;
  for (auto& t : tasks_) {
    trainables.push_back(t.local);
    if (!t.local) continue;
    models.push_back(&t.local->model());
    local_steps = std::max(local_steps, t.local->batchesPerEpoch());
    so.channels_last = so.channels_last || t.local->channelsLast();
    so.fp16_scaler = so.fp16_scaler || t.local->precision() == Precision::kFp16;
  }
  run.steps_per_epoch = sync_.max(local_steps);
  run.step =
      std::make_unique<TrainStep>(std::move(trainables), uniqueParameters(models), so, sync_);
  run.budget = static_cast<int64_t>(std::ceil(options_.epochs * run.steps_per_epoch));
  if (options_.max_steps > 0) run.budget = std::min(run.budget, options_.max_steps);
  run.result.dropped.assign(tasks_.size(), false);
  run.weight.assign(tasks_.size(), 1.0);
  run.next_validation = std::max<int64_t>(1, run.steps_per_epoch / 2);
}

// The step is graphed on CUDA (or on static inputs, kStaticInputs) when every local task is a
// classifier with static shapes and no host work in its loss: fp32 or bf16 (fp16's gradient
// scaler reads the host), no dropout (its generator is reseeded per step).
StepMode JointTrainer::stepMode() const {
  if (options_.capture == TrainOptions::Capture::kOff) return StepMode::kEager;
  bool any = false;
  for (const auto& t : tasks_) {
    if (!t.local) continue;
    any = true;
    if (options_.capture == TrainOptions::Capture::kAuto &&
        !(t.local->device().is_cuda() && cudaGraphsAvailable()))
      return StepMode::kEager;
    if (t.local->config().kind != config::TaskKind::kClassification ||
        t.local->precision() == Precision::kFp16 || t.local->model().hasDropout())
      return StepMode::kEager;
  }
  if (!any) return StepMode::kEager;
  return options_.capture == TrainOptions::Capture::kStaticInputs ? StepMode::kStaticInputs
                                                                  : StepMode::kGraphed;
}

void JointTrainer::refreshWeights(Run& run) const {
  if (!options_.adaptive) return;
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    const double a = std::max(run.acc[i], 1e-3);
    run.weight[i] = std::min(std::pow(tasks_[i].target / a, 0.75), 10.0);
  }
}

// validateAll, timed: the run's longest validation is what a deadline must leave room for.
void JointTrainer::validateTimed(Run& run) {
  const auto t0 = std::chrono::steady_clock::now();
  run.acc = validateAll();
  ++run.result.validations;
  run.result.validation_seconds =
      std::max(run.result.validation_seconds,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

// Whether the next step and the validation after it would end past the deadline, agreed by
// every rank (the latest clock decides). Steps are timed between validations; before the first
// one, only the validation is counted.
bool JointTrainer::pastDeadline(Run& run) {
  if (!options_.deadline) return false;
  const auto now = std::chrono::steady_clock::now();
  const double step = run.steps_timed > 0 ? run.step_seconds / run.steps_timed : 0;
  const double left = std::chrono::duration<double>(*options_.deadline - now).count();
  const int64_t local = step + run.result.validation_seconds > left;
  return sync_.max(local) != 0;
}

merge::TrialRules rulesOf(const TrainOptions& options) {
  merge::TrialRules rules;
  rules.adaptive = options.adaptive;
  rules.early_stop = options.early_stop;
  rules.drop_after_epochs = options.drop_after_epochs;
  rules.min_candidates = options.min_candidates;
  rules.end_after_collapses = options.end_after_collapses;
  return rules;
}

TrialResult JointTrainer::run() {
  Run run;
  prepare(run);
  auto& r = run.result;
  validateTimed(run);
  keepBest(run);
  run.start_acc = run.acc;
  refreshWeights(run);
  bool go_on = !(options_.early_stop && metAll(tasks_, run.acc, r.dropped, false));
  if (!go_on) r.ended = "every task meets its target before training";
  while (go_on && r.steps < run.budget) {
    if (pastDeadline(run)) {
      r.ended = "the time budget is spent";
      log::info("train", "{}: {} after {} steps (a step takes {} s, a validation {} s)",
                options_.label, r.ended, r.steps,
                formatFixed(run.step_seconds / std::max<int64_t>(run.steps_timed, 1), 2),
                formatFixed(r.validation_seconds, 1));
      break;
    }
    const auto step_start = std::chrono::steady_clock::now();
    std::vector<bool> active(tasks_.size());
    std::vector<double> weights(tasks_.size());
    for (std::size_t i = 0; i < tasks_.size(); ++i) {
      active[i] = !r.dropped[i];
      weights[i] = run.weight[i] * tasks_[i].loss_scale;
    }
    if (options_.warmup_epochs > 0 || options_.cosine_decay) {
      const double ramp = options_.warmup_epochs * static_cast<double>(run.steps_per_epoch);
      double lr = options_.lr;
      if (r.steps + 1 < ramp) {
        lr *= static_cast<double>(r.steps + 1) / ramp;
      } else if (options_.cosine_decay && run.budget > ramp) {
        const double done = (static_cast<double>(r.steps) - ramp) / (run.budget - ramp);
        lr *= 0.5 * (1 + std::cos(M_PI * std::min(1.0, done)));
      }
      run.step->setLr(lr);
    }
    const auto total = run.step->forward(active, weights);
    const int64_t step = r.steps + 1;
    const bool validating = step >= run.next_validation || step >= run.budget;
    if (validating || step % kReadBackEvery == 0) {
      double loss = 0;
      if (!agreeToGoOn(run, loss)) break;
      logProgress(run, loss);
    }
    run.step->apply(total);
    ++r.steps;
    run.step_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    ++run.steps_timed;
    if (!validating) continue;
    go_on = validateAndReschedule(run);
  }
  if (r.steps > run.last_validated && !r.nan_loss) {
    validateTimed(run);
    keepBest(run);
  }
  r.step_seconds = run.steps_timed > 0 ? run.step_seconds / run.steps_timed : 0;
  if (options_.keep_best && !r.nan_loss) restoreBest(run);
  r.graphed_steps = run.step->graphedSteps();
  log::progress(
      "train",
      format("{}: {} steps in {} s{}", options_.label, r.steps, std::round(run.seconds() * 10) / 10,
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

// On the cadence: the losses since the last read-back come to the host, and every rank must
// agree to go on: a time limit hit here, or a non-finite loss there, stops all of them.
bool JointTrainer::agreeToGoOn(Run& run, double& loss) {
  int64_t local_flag = options_.seconds > 0 && run.seconds() >= options_.seconds ? 1 : 0;
  if (const auto pending = run.step->takePending()) {
    loss = pending->mean_loss;
    if (pending->not_finite) local_flag = 2;
  }
  const int64_t flag = sync_.max(local_flag);
  if (flag == 2) {
    run.result.nan_loss = true;
    log::warn("train", "{}: the loss is not finite by step {}; the trial fails", options_.label,
              run.result.steps + 1);
  }
  return flag == 0;
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
    if (tasks_[i].local) run.best_state[i] = tasks_[i].local->model().stateDictCopy();
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
  validateTimed(run);
  keepBest(run);
  run.last_validated = r.steps;
  const double epochs_done = double(r.steps) / run.steps_per_epoch;
  // The budget left, in epochs: steps, and seconds at the rate so far (the slowest rank's
  // clock, so that every rank takes the same decision).
  double steps_left = double(run.budget - r.steps);
  if (options_.seconds > 0) {
    const double elapsed = double(sync_.max(static_cast<int64_t>(run.seconds() * 1000))) / 1000;
    const double rate = r.steps / std::max(elapsed, 1e-9);
    steps_left = std::min(steps_left, std::max(0.0, options_.seconds - elapsed) * rate);
  }
  const double epochs_left = steps_left / run.steps_per_epoch;
  // The search's rules decide (merge/trial_rules.h); the trainer obeys.
  std::vector<merge::TaskAtValidation> seen;
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    merge::TaskAtValidation t;
    t.name = tasks_[i].name;
    t.score = run.acc[i];
    t.target = tasks_[i].target;
    t.start_score = run.start_acc[i];
    t.previous_score = previous[i];
    t.candidate = tasks_[i].candidate;
    t.dropped = r.dropped[i];
    const auto index = static_cast<std::size_t>(tasks_[i].index);
    if (index < options_.collapse_floor.size()) t.collapse_floor = options_.collapse_floor[index];
    seen.push_back(t);
  }
  const auto verdict = merge::judgeValidation(
      seen, {r.validations, epochs_done, previous_epochs, epochs_left}, rulesOf(options_));
  for (const auto& note : verdict.notes) log::info("train", "{}: {}", options_.label, note);
  for (std::size_t i = 0; i < tasks_.size(); ++i) {
    r.dropped[i] = verdict.dropped[i];
  }
  r.ended = verdict.ended;
  if (!r.ended.empty()) {
    log::info("train", "{}: ends at step {}: {}", options_.label, r.steps, r.ended);
    return false;
  }
  refreshWeights(run);
  run.next_validation =
      r.steps + std::max<int64_t>(1, static_cast<int64_t>(verdict.interval * run.steps_per_epoch));
  return true;
}

}  // namespace gemel::train
