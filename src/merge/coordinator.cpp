#include "gemel/merge/coordinator.h"

#include "gemel/merge/wire.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <numeric>
#include <sstream>

#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "gemel/core/log.h"
#include "gemel/dist/watchdog.h"
#include "gemel/merge/record.h"
#include "gemel/train/objective.h"

namespace gemel::merge {

namespace fs = std::filesystem;

namespace {
// A decision that kept the sharing for some models ("accepted", "partial 2/3"): its trial's
// step worked.
bool keptSome(const std::string& decision) {
  return decision == "accepted" || decision.rfind("partial", 0) == 0;
}
}  // namespace

MergeCoordinator::MergeCoordinator(const config::Workload& w, const std::string& workload_path,
                                   const MergeOptions& o, TrialExecutor& runner,
                                   const dist::World& control)
    : w_(w),
      workload_path_(workload_path),
      results_path_((fs::path(o.out_dir) / "results.h5").string()),
      o_(o),
      runner_(runner),
      control_(control),
      parallel_(o.parallel_trials && control.size() > 1),
      trial_world_(&control),
      start_(std::chrono::steady_clock::now()) {}

MergeCoordinator::~MergeCoordinator() = default;

double MergeCoordinator::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

bool MergeCoordinator::roomFor(int validations, int steps) const {
  if (o_.time_budget <= 0 || o_.fixed_steps > 0) return true;
  std::string answer;
  if (trial_world_->lead()) {
    const double need = validations * validation_seconds_ + steps * step_seconds_ + record_seconds_;
    answer = elapsed() + need <= o_.time_budget ? "1" : "0";
  }
  return trial_world_->share(answer) == "1";
}

// Each target against what its val set can tell: the binomial standard error of a score
// measured on n images, sqrt(p (1 - p) / n), against what the target lets the task lose. When
// two standard errors exceed that margin, chance alone moves scores across the target.
void MergeCoordinator::logTargets() const {
  for (int t = 0; t < static_cast<int>(o_.val_sizes.size()) && t < runner_.tasks(); ++t) {
    const int64_t n = o_.val_sizes[static_cast<std::size_t>(t)];
    if (n <= 0) continue;
    const auto& task = w_.tasks[static_cast<std::size_t>(t)];
    const double p = std::clamp(unmerged_[t], 0.0, 1.0);
    const double error = std::sqrt(p * (1 - p) / static_cast<double>(n));
    const double margin = unmerged_[t] - target_[t];
    log::info("merge",
              "{}: target {} ({} of {} {}) on {} val images; a score's standard error there is "
              "{} (binomial)",
              task.name, formatFixed(target_[t], 4), formatFixed(task.accuracy_target, 3),
              formatFixed(unmerged_[t], 4), train::makeObjective(task)->metric(), n,
              formatFixed(error, 4));
    if (2 * error > margin) {
      log::warn(
          "merge",
          "{}: its val set of {} images is too small for its target to mean much: two "
          "standard errors ({}) exceed what the target lets it lose ({}), so scores cross "
          "the target by chance; a val split of about {} images would resolve it",
          task.name, n, formatFixed(2 * error, 4), formatFixed(margin, 4),
          margin > 0 ? static_cast<int64_t>(std::ceil(4 * p * (1 - p) / (margin * margin))) : 0);
    }
  }
}

io::Results MergeCoordinator::run(const std::optional<io::Results>& previous) {
  const auto& catalog = runner_.catalog();
  const int n = runner_.tasks();
  if (catalog.groups().empty()) {
    // Said first: the scores below are then measured only to record the unmerged workload.
    std::string archs;
    for (const auto& t : w_.tasks)
      archs += (archs.empty() ? "" : ", ") + t.name + " (" + t.arch + ")";
    log::warn("merge",
              "nothing to share: {}; the search has no trial to run, and results.h5 "
              "records the workload unmerged",
              n == 1
                  ? "the workload has a single task, " + archs + ", and sharing needs two"
                  : "no two of its models have a layer of the same shape and settings: " + archs);
  }
  unmerged_.assign(n, 0);
  target_.assign(n, 0);
  // Unmerged scores: recorded (resume), given, or measured (replicas each on their shard).
  std::vector<int> unknown;
  for (int t = 0; t < n; ++t) {
    if (!previous && !w_.tasks[t].unmerged_acc) unknown.push_back(t);
  }
  const auto measured = runner_.measure(unknown);
  for (std::size_t k = 0; k < unknown.size(); ++k) {
    unmerged_[unknown[k]] = measured[k];
    log::info("merge", "{}: unmerged {} {} (measured)", w_.tasks[unknown[k]].name,
              train::makeObjective(w_.tasks[unknown[k]])->metric(), formatFixed(measured[k], 4));
  }
  for (int t = 0; t < n; ++t) {
    if (previous) {
      unmerged_[t] = previous->tasks[t].unmerged_score;
      target_[t] = previous->tasks[t].target;
    } else {
      if (w_.tasks[t].unmerged_acc) unmerged_[t] = *w_.tasks[t].unmerged_acc;
      target_[t] = unmerged_[t] * w_.tasks[t].accuracy_target;
    }
  }
  runner_.setTargets(target_);
  logTargets();
  if (control_.lead()) {
    planner_ =
        std::make_unique<Planner>(catalog, parseStrategy(w_.search.strategy), w_.search.groups);
    if (o_.time_budget > 0) planner_->enableSecondPass();
  }
  log::info("merge", "{} tasks, {} weight bytes ({}); sharing could save {} in {} groups", n,
            catalog.totalBytes(), formatBytes(catalog.totalBytes()),
            formatBytes(catalog.savingsBytes()), catalog.groups().size());

  startFresh();
  if (previous) resume(*previous);
  runner_.accept();
  if (previous) runner_.apply(accepted_, From::kAccepted, accepted_);
  if (parallel_) {
    busy_.assign(static_cast<std::size_t>(control_.size()), 0.0);
    idle_ = busy_;
    if (previous && previous->rank_busy_seconds.size() == busy_.size()) {
      busy_ = previous->rank_busy_seconds;
      idle_ = previous->rank_idle_seconds;
    }
  }
  record("running");
  printTable();
  if (parallel_) {
    runParallel();
  } else {
    for (;;) {
      // The lead proposes; everyone learns the trial ("" ends the search).
      std::string text;
      if (control_.lead()) text = proposeNext();
      text = control_.share(text);
      if (text.empty()) break;
      runTrial(wire::unpackTrial(text));
    }
  }
  // Final: the accepted models, validated once more, when the time budget holds it; else
  // each task keeps the score its last decision validated on these same weights.
  runner_.apply(accepted_, From::kAccepted, accepted_);
  if (roomFor(1, 0)) {
    std::set<int> all;
    for (int t = 0; t < n; ++t) all.insert(t);
    score_ = runner_.validate(accepted_, all, {});
  } else {
    log::info("merge",
              "the time budget holds no final validation: the scores are the ones "
              "measured when each task's weights were decided");
  }
  record("done");
  printReport();
  return results_;
}

// One line: what sharing could save, what the search confirmed, how long, how trials ended.
void MergeCoordinator::printReport() const {
  if (!control_.lead()) return;
  const auto& catalog = runner_.catalog();
  std::map<std::string, int> by;
  for (const auto& t : results_.trials) by[t.decision.substr(0, t.decision.find(' '))]++;
  std::string decisions;
  for (const auto& [d, n] : by) decisions += format("{}{} {}", decisions.empty() ? "" : ", ", n, d);
  const int64_t saved = accepted_.bytesSaved(catalog), possible = catalog.savingsBytes();
  const auto line = format(
      "search: possible savings {}, confirmed {} ({}% of possible, {}% of all weights) in {} s; "
      "{} trials: {}; ended: {}",
      formatBytes(possible), formatBytes(saved),
      formatFixed(100.0 * saved / std::max<int64_t>(1, possible), 1),
      formatFixed(100.0 * saved / std::max<int64_t>(1, catalog.totalBytes()), 1),
      formatFixed(elapsed(), 0), results_.trials.size(), decisions.empty() ? "none" : decisions,
      end_reason_);
  log::info("merge", "{}", line);
  if (results_.rank_busy_seconds.size() > 1) {
    // How much of the search each rank spent training (the rest it waited on other ranks).
    std::string busy;
    for (std::size_t r = 0; r < results_.rank_busy_seconds.size(); ++r) {
      const double all = results_.rank_busy_seconds[r] + results_.rank_idle_seconds[r];
      busy += format("{}r{} {}%", busy.empty() ? "" : ", ", r,
                     formatFixed(all > 0 ? 100 * results_.rank_busy_seconds[r] / all : 0, 0));
    }
    log::info("merge", "ranks busy in trials: {}", busy);
  }
  if (o_.time_budget > 0 && o_.fixed_steps <= 0) {
    // What the budget may be overrun by: one step and one validation.
    log::info("merge",
              "time budget {} s: search took {} s; a step took {} s, a validation at most {} s, "
              "writing results.h5 at most {} s",
              formatFixed(o_.time_budget, 0), formatFixed(elapsed(), 2),
              formatFixed(step_seconds_, 3), formatFixed(validation_seconds_, 3),
              formatFixed(record_seconds_, 3));
  }
  if (o_.print_table) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
}

void MergeCoordinator::startFresh() {
  const auto& catalog = runner_.catalog();
  const auto yaml = readFile(workload_path_, "workload file");
  results_.workload_yaml.assign(yaml.begin(), yaml.end());
  results_.workload_path = fs::absolute(workload_path_).string();
  results_.total_bytes = catalog.totalBytes();
  results_.possible_savings = catalog.savingsBytes();
  results_.timeline.emplace_back(0.0, catalog.totalBytes());
  score_ = unmerged_;
}

// The lead replays the recorded outcomes through its fresh Planner: the search is
// deterministic, so this rebuilds its queue exactly, and must end at the recorded plan.
void MergeCoordinator::resume(const io::Results& previous) {
  std::string plan_text;
  if (control_.lead()) {
    std::map<std::string, int> index;
    for (int t = 0; t < runner_.tasks(); ++t) index[w_.tasks[t].name] = t;
    for (const auto& rec : previous.trials) {
      const auto trial = planner_->next();
      GEMEL_THROW_IF_NOT(trial && trial->label == rec.label, ConfigError,
                         "{}: trial {} tried {}, but this workload's search proposes {}; the "
                         "search settings changed since: merge into a new --out directory",
                         results_path_, rec.number, rec.label, trial ? trial->label : "nothing");
      std::set<int> met;
      const bool kept = keptSome(rec.decision);
      for (const auto& name : rec.met) {
        if (kept) met.insert(index.at(name));
      }
      planner_->report(*trial, met);
    }
    GEMEL_THROW_IF_NOT(planner_->accepted().json() == previous.plan_json, InputError,
                       "{}: its trials do not lead to its recorded plan (/search/state); the "
                       "file was altered: merge into a new --out directory",
                       results_path_);
    plan_text = wire::pack(planner_->accepted());
  }
  accepted_ = wire::unpackPlan(control_.share(plan_text));
  for (int t = 0; t < runner_.tasks(); ++t) score_[t] = previous.tasks[t].final_score;
  for (const auto& rec : previous.trials) {
    if (rec.decision == "accepted") lr_scale_ *= std::pow(kBackoff, rec.backoffs);
  }
  runner_.restore(previous);
  results_.trials = previous.trials;
  if (!previous.timeline.empty()) {
    results_.timeline = previous.timeline;
    start_ -= std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(previous.timeline.back().first));
  }
  log::info("merge", "resuming {}: {} trials done, {} saved; the search goes on from trial {}",
            results_path_, previous.trials.size(),
            formatBytes(accepted_.bytesSaved(runner_.catalog())), previous.trials.size() + 1);
}

// The lead's next trial as text, or "" with the reason the search ends.
std::string MergeCoordinator::proposeNext(bool take) {
  if (o_.time_budget > 0 && elapsed() >= o_.time_budget) {
    end_reason_ = format("the time budget ({} s) is spent", formatFixed(o_.time_budget, 0));
    return "";
  }
  // A trial validates before it trains: one that cannot even do that within the budget is
  // not started.
  if (o_.time_budget > 0 && o_.fixed_steps <= 0 &&
      elapsed() + validation_seconds_ + record_seconds_ > o_.time_budget) {
    end_reason_ = format("the time budget ({} s) is spent: the {} s left hold no validation ({} s)",
                         formatFixed(o_.time_budget, 0), formatFixed(o_.time_budget - elapsed(), 0),
                         formatFixed(validation_seconds_, 0));
    return "";
  }
  std::optional<Planner> copy;
  if (!take) copy.emplace(*planner_);
  auto next = take ? planner_->next() : copy->next();
  if (!next) {
    end_reason_ =
        o_.time_budget > 0 ? "nothing is left worth trying" : "every group has had its try";
    return "";
  }
  if (o_.max_trials > 0 && next->number > o_.max_trials) {
    end_reason_ = format("--max-trials {} reached", o_.max_trials);
    return "";
  }
  return wire::pack(*next);
}

// A trial's own time is capped by what is left of the search's budget.
void MergeCoordinator::capToBudget(train::TrainOptions& to) const {
  if (o_.time_budget <= 0) return;
  const double left = std::max(1.0, o_.time_budget - elapsed());
  to.seconds = to.seconds > 0 ? std::min(to.seconds, left) : left;
}

train::TrainOptions MergeCoordinator::trialOptions(const Trial& trial) const {
  auto to = train::TrainOptions::fromSearch(w_.search);
  to.lr *= lr_scale_;
  if (trial.pass == 2) {  // a second try: a smaller step for longer
    to.lr *= kSecondPassLr;
    to.epochs *= kSecondPassBudget;
    to.seconds *= kSecondPassBudget;
  }
  capToBudget(to);
  if (o_.time_budget > 0) {
    // (less the time the trial's record takes after it)
    to.deadline = start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::duration<double>(o_.time_budget - record_seconds_));
  }
  to.warmup_epochs = kTrialWarmupEpochs;
  to.max_steps = o_.max_steps_per_trial;
  if (o_.fixed_steps > 0) {
    to.max_steps = o_.fixed_steps;
    to.epochs = 1e9;
    to.seconds = 0;
    to.deadline.reset();
    to.early_stop = false;
    to.adaptive = false;
  }
  to.label = format("trial {} ({})", trial.number, trial.label);
  to.min_candidates = 2;  // partial confirmation needs two models that met
  return to;
}

MergeCoordinator::Evaluation MergeCoordinator::evaluate(const Trial& trial) {
  Evaluation e;
  e.trial = trial;
  e.start = elapsed();
  const auto trial_plan = accepted_.with(trial);
  e.involved = trial_plan.models();
  const auto& involved_set = e.involved;
  // A new shared layer starts from the model with the least headroom above its target (the
  // others have room to adapt to it): members ranked by score / target.
  std::vector<int> order(runner_.tasks()), rank(runner_.tasks());
  std::iota(order.begin(), order.end(), 0);
  auto headroom = [&](int m) { return score_[m] / std::max(target_[m], 1e-12); };
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return headroom(a) < headroom(b); });
  for (std::size_t k = 0; k < order.size(); ++k) rank[order[k]] = static_cast<int>(k);
  auto options = trialOptions(trial);
  const auto candidates = trial.models();
  train::TrialResult outcome;
  int backoffs = 0;
  options.collapse_floor.resize(runner_.tasks());
  for (int m = 0; m < runner_.tasks(); ++m) options.collapse_floor[m] = collapseFloor(m);
  for (;;) {
    // When a collapse now would be retried, the trial ends as soon as enough of its tasks have
    // collapsed, instead of training the rest on for nothing.
    options.end_after_collapses = !retried(backoffs) ? 0
                                  : backoffs == 0    ? 1
                                                  : (static_cast<int>(candidates.size()) + 1) / 2;
    runner_.apply(trial_plan, From::kAccepted, accepted_, rank);
    outcome = runner_.train(trial_plan, options, {candidates.begin(), candidates.end()});
    noteTimes(outcome);
    int fallen = 0;
    const auto why = collapse(involved_set, outcome, fallen);
    if (why.empty() || !retried(backoffs)) break;
    // Once the step was made smaller, a collapse of fewer than half of the trial's models is
    // theirs: those models cannot take this sharing, and the others go on to the decision.
    if (backoffs > 0 && !outcome.nan_loss && 2 * fallen < static_cast<int>(candidates.size())) {
      log::info("merge", "trial {}: {} again at a smaller step: a verdict on the sharing",
                trial.number, why);
      break;
    }
    ++backoffs;
    options.lr *= kBackoff;
    capToBudget(options);
    log::info("merge",
              "trial {}: {}: a step-size problem, not a verdict on the sharing; again from the "
              "accepted weights at lr {}",
              trial.number, why, options.lr);
  }
  e.decision = decide(trial, outcome, options);
  e.changed = keptSome(e.decision.label);
  e.outcome = outcome;
  e.backoffs = backoffs;
  e.lr = options.lr;
  e.score = score_;
  e.seconds = elapsed() - e.start;
  return e;
}

// Every rank: the lead reports the trial to the Planner; everyone adopts its plan and records
// the trial.
void MergeCoordinator::commit(const Evaluation& e, double seconds, const std::vector<int>& ranks) {
  if (e.decision.label == "accepted") lr_scale_ *= std::pow(kBackoff, e.backoffs);
  std::string plan_text;
  if (control_.lead()) {
    planner_->report(e.trial, e.decision.report_met);
    plan_text = wire::pack(planner_->accepted());
  }
  accepted_ = wire::unpackPlan(control_.share(plan_text));

  const auto& catalog = runner_.catalog();
  const int64_t saved = accepted_.bytesSaved(catalog);
  results_.timeline.emplace_back(elapsed(), catalog.totalBytes() - saved);
  auto rec = trialRecord(e.trial, e.involved, e.outcome, e.decision);
  rec.bytes_saved = saved;
  rec.backoffs = e.backoffs;
  if (e.lr != w_.search.lr) rec.lr = e.lr;
  rec.seconds = seconds;
  rec.ranks.assign(ranks.begin(), ranks.end());
  results_.trials.push_back(rec);
  if (control_.lead() && o_.print_table) printTrialRow(rec, target_, w_, catalog.totalBytes());
}

void MergeCoordinator::runTrial(const Trial& trial) {
  const auto e = evaluate(trial);
  std::vector<int> ranks;
  for (const int r : runner_.ranksOf(e.involved)) ranks.push_back(r);
  commit(e, elapsed() - e.start, ranks);
  runner_.apply(accepted_, From::kAccepted, accepted_);  // back to the accepted state
  record("running");
}

// Why the trial collapsed ("" when it did not): a non-finite loss, or a task that ended further
// below its target than the trial could have pushed it by sharing alone (twice what its
// target allows it to lose, or its headroom at the start if that is larger).
// What results.h5 records of a trial: its models, what each trained task scored, met and
// dropped, and the decision with its partial check.
io::TrialRecord MergeCoordinator::trialRecord(const Trial& trial, const std::set<int>& involved,
                                              const train::TrialResult& outcome,
                                              const Decision& decision) const {
  io::TrialRecord rec;
  rec.number = trial.number;
  rec.label = trial.label;
  rec.decision = decision.label;
  for (const int m : trial.models()) rec.models.push_back(w_.tasks[m].name);
  std::size_t k = 0;
  for (const int m : involved) {
    if (outcome.met[k]) rec.met.push_back(w_.tasks[m].name);
    if (outcome.dropped[k]) rec.dropped.push_back(w_.tasks[m].name);
    rec.trained.push_back(w_.tasks[m].name);
    rec.scores.push_back(outcome.scores[k++]);
  }
  rec.ended = outcome.ended;
  for (const int m : decision.checked) rec.checked.push_back(w_.tasks[m].name);
  rec.check_scores = decision.check_scores;
  rec.steps = outcome.steps;
  return rec;
}

// A retry validates, steps and validates again: it is tried only when that fits the budget.
bool MergeCoordinator::retried(int backoffs) const {
  return o_.fixed_steps <= 0 && backoffs < kMaxBackoffs && roomFor(2, 1);
}

void MergeCoordinator::noteTimes(const train::TrialResult& outcome) {
  validation_seconds_ = std::max(validation_seconds_, outcome.validation_seconds);
  if (outcome.step_seconds > 0) step_seconds_ = outcome.step_seconds;
}

double MergeCoordinator::collapseFloor(int m) const {
  return target_[m] - std::max({score_[m] - target_[m], unmerged_[m] - target_[m], kMinAllowance});
}

std::string MergeCoordinator::collapse(const std::set<int>& involved,
                                       const train::TrialResult& outcome, int& fallen) const {
  fallen = 0;
  if (outcome.nan_loss) return "the loss is not finite";
  std::string why;
  std::size_t k = 0;
  for (const int m : involved) {
    const double score = outcome.scores[k++];
    if (score < collapseFloor(m)) {
      ++fallen;
      why +=
          format("{}{} fell from {} to {} (target {})", why.empty() ? "" : ", ", w_.tasks[m].name,
                 formatFixed(score_[m], 3), formatFixed(score, 3), formatFixed(target_[m], 3));
    }
  }
  return why;
}

MergeCoordinator::Decision MergeCoordinator::decide(const Trial& trial,
                                                    const train::TrialResult& outcome,
                                                    const train::TrainOptions& options) {
  const auto involved_set = accepted_.with(trial).models();
  std::vector<int> involved(involved_set.begin(), involved_set.end());
  std::set<int> met;
  std::vector<double> trial_score = score_;
  for (std::size_t k = 0; k < involved.size(); ++k) {
    trial_score[involved[k]] = outcome.scores[k];
    if (outcome.met[k]) met.insert(involved[k]);
  }
  const auto candidates = trial.models();
  bool others_ok = true;  // involved tasks outside the trial that it must not break
  for (const int m : involved_set) {
    if (!met.count(m) && !std::count(candidates.begin(), candidates.end(), m)) others_ok = false;
  }
  if (!outcome.nan_loss && others_ok && met.size() == involved_set.size()) {
    runner_.accept();
    score_ = trial_score;
    return {"accepted", met, {}, {}};
  }
  std::size_t met_candidates = 0;
  for (const int m : candidates) met_candidates += met.count(m);
  Decision d{outcome.nan_loss ? "failed (NaN)" : "rejected", {}, {}, {}};
  if (!outcome.nan_loss && others_ok && met_candidates >= 2 &&
      checkPartial(trial, met, options, d)) {
    d.label = format("partial {}/{}", met_candidates, candidates.size());
    d.report_met = met;
  }
  return d;
}

// The partial check (see coordinator.h). True, and the new state taken, only if every task
// validates at target; the decision carries the check's scores either way.
namespace {

// The accepted plan with the trial's layers shared by the models that met their targets only.
SharingPlan keptFor(const SharingPlan& accepted, const Trial& trial, const std::set<int>& met) {
  SharingPlan plan = accepted;
  for (const auto& part : trial.parts) {
    TrialPart kept = part;
    kept.models.clear();
    for (const int m : part.models) {
      if (met.count(m)) kept.models.push_back(m);
    }
    plan.add(kept);
  }
  return plan;
}

// A recovery's budget: `fraction` of a trial's, without the trial's candidate rule.
train::TrainOptions recoveryOptions(const train::TrainOptions& trial, double fraction,
                                    const std::string& label) {
  auto o = trial;
  o.epochs = trial.epochs * fraction;
  o.seconds = trial.seconds * fraction;
  if (trial.max_steps > 0) {
    o.max_steps = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(trial.max_steps * fraction)));
  }
  o.min_candidates = 0;
  o.label = label;
  return o;
}

}  // namespace

bool MergeCoordinator::checkPartial(const Trial& trial, const std::set<int>& met,
                                    const train::TrainOptions& options, Decision& decision) {
  const SharingPlan tentative = keptFor(accepted_, trial, met);
  const int n = runner_.tasks();
  const auto involved_set = accepted_.with(trial).models();
  std::set<int> missed;  // back to their accepted weights in the staged state
  for (const int m : involved_set) {
    if (!met.count(m)) missed.insert(m);
  }
  runner_.stage(missed);
  // Only the models that share a layer in the tentative plan can have moved.
  const auto check_set = tentative.models();
  std::vector<double> check = score_;
  const std::string label = format("trial {}: partial check", trial.number);
  auto validate = [&](const std::string& state) {
    const auto scores = runner_.validate(tentative, check_set, options);
    std::size_t k = 0;
    std::string text;
    double shortfall = 0;
    for (const int m : check_set) {
      check[m] = scores[k++];
      shortfall += std::max(0.0, target_[m] - check[m]);
      text += format("{}{} {}/{}", text.empty() ? "" : ", ", w_.tasks[m].name,
                     formatFixed(check[m], 3), formatFixed(target_[m], 3));
    }
    log::info("merge", "{} ({}): {}", label, state, text);
    return shortfall;
  };
  // A tensor that a model that missed shares with models that met (an earlier group) takes
  // one of two consistent values: the met models' (as the trial left it), or its value before
  // the trial (every sharer held the same). `materialize` takes each shared tensor from a
  // preferred member: the met models, or the ones that missed (whose snapshot is pre-trial).
  auto tie = [&](bool from_met) {
    std::vector<int> rank(n, from_met ? 0 : 1);
    for (const int m : missed) rank[m] = from_met ? 1 : 0;
    runner_.apply(tentative, From::kStaged, tentative, rank);
  };
  if (!roomFor(1, 0)) {
    log::info("merge", "{}: skipped, the time budget holds no validation", label);
    return false;
  }
  tie(true);
  double shortfall = validate("shared layers as the models that met left them");
  bool moved = false;  // does any model that missed share a tensor in the tentative plan?
  for (const int m : missed) moved = moved || check_set.count(m) > 0;
  if (shortfall > 0 && moved && roomFor(1, 0)) {
    const auto from_met = check;
    const double before = validate((tie(false), "shared layers as before the trial"));
    if (before < shortfall) {
      shortfall = before;
    } else {
      tie(true);
      check = from_met;
    }
  }
  // Recovery: every model of the tentative plan retrains jointly (the adaptive loss weights
  // favour the ones below target) for a fraction of a trial's budget, until all meet.
  // (It validates, steps, validates, and the check validates once more.)
  if (shortfall > 0 && w_.search.recovery_fraction > 0 && roomFor(3, 1)) {
    const auto outcome = runner_.train(
        tentative, recoveryOptions(options, w_.search.recovery_fraction, label + " recovery"), {});
    noteTimes(outcome);
    if (!outcome.nan_loss) shortfall = validate(format("after {} recovery steps", outcome.steps));
  }
  decision.checked.assign(check_set.begin(), check_set.end());
  decision.check_scores.clear();
  for (const int m : check_set) decision.check_scores.push_back(check[m]);
  if (shortfall > 0) {
    std::string missing;
    for (const int m : check_set) {
      if (check[m] < target_[m]) missing += (missing.empty() ? "" : ", ") + w_.tasks[m].name;
    }
    log::info("merge", "{}: rejected, below target: {}", label, missing);
    return false;
  }
  runner_.accept();
  score_ = check;
  return true;
}

void MergeCoordinator::record(const std::string& status) {
  // Each rank's busy and idle trial seconds: busy in a trial that trained a task it holds.
  const auto n = static_cast<std::size_t>(runner_.ranks());
  results_.rank_busy_seconds.assign(n, 0.0);
  results_.rank_idle_seconds.assign(n, 0.0);
  if (parallel_) {  // measured wave by wave (runWave)
    results_.rank_busy_seconds = busy_;
    results_.rank_idle_seconds = idle_;
  }
  for (const auto& t : results_.trials) {
    if (parallel_) break;
    std::vector<bool> busy(n, false);
    for (const auto r : t.ranks) {
      if (r >= 0 && static_cast<std::size_t>(r) < n) busy[static_cast<std::size_t>(r)] = true;
    }
    for (std::size_t r = 0; r < n; ++r)
      (busy[r] ? results_.rank_busy_seconds : results_.rank_idle_seconds)[r] += t.seconds;
  }
  results_.status = status;
  results_.search_seconds = elapsed();
  if (status == "done") results_.ended = end_reason_;
  const auto t0 = std::chrono::steady_clock::now();
  // In parallel mode each rank's executor holds every task: the lead alone writes.
  if (!parallel_ || control_.lead())
    runner_.record(results_, accepted_, {unmerged_, target_, score_});
  // Writing results.h5 follows every trial: the budget keeps room for it (the longest so far).
  record_seconds_ =
      std::max(record_seconds_,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

// ---- Parallel trials ----------------------------------------------------------------------
// A wave: the lead takes the next trial from the Planner and, for every other rank, a trial the
// search would run after it, were the trials before accepted or rejected (breadth first, so
// with 3 ranks: the next trial, and what follows it either way). Every rank runs its trial on
// its own copy of every task, from the committed state. Then, on every rank, in plan order:
//   - a trial the search would not run now (an earlier one went another way) is dropped, and
//     so is every trial after it;
//   - a trial on tasks no earlier commit of the wave changed commits as it was decided;
//   - one whose tasks an earlier commit changed was trained from a stale state: if it took a
//     new state, its result combined with the committed state is validated on its rank, and it
//     commits only if every task meets its target; else (or if rejected) it runs again, first in
//     the next wave.
// The Planner learns the outcomes in plan order, and results.h5 is written after each wave: a
// kill during a wave resumes at its start, which plans the same wave again.
void MergeCoordinator::runParallel() {
  runner_.settle();
  log::info("merge",
            "parallel trials on {} ranks, each holding all {} tasks: the next trial takes a "
            "rank per task it trains{}; the ranks left run the trials the search may try next, "
            "one each",
            control_.size(), runner_.tasks(),
            o_.trial_ranks > 0 ? format(" (at most {})", o_.trial_ranks) : "");
  for (;;) {
    std::string text;
    if (control_.lead()) text = planWave();
    text = control_.share(text);
    if (text.empty()) break;
    std::vector<Trial> wave;
    std::size_t at = text.find('\x1e');
    const int group = std::stoi(text.substr(0, at));
    for (++at; at < text.size();) {
      const auto end = std::min(text.find('\x1e', at), text.size());
      wave.push_back(wire::unpackTrial(text.substr(at, end - at)));
      at = end + 1;
    }
    runWave(wave, group);
    runner_.apply(accepted_, From::kAccepted, accepted_);
    record("running");
  }
  log::info("merge", "parallel trials: {} run ahead, {} of them kept ({} validated combined)",
            speculated_, used_, combined_);
}

std::set<int> MergeCoordinator::scope(const Trial& trial) const {
  return accepted_.with(trial).connected(trial.models());
}

std::string MergeCoordinator::planWave() {
  const auto first = proposeNext();
  if (first.empty()) return "";
  std::vector<std::string> wave{first};
  // The next trial takes a rank per task it trains (at most trial_ranks); the others guess.
  const int involved = static_cast<int>(scope(wire::unpackTrial(first)).size());
  int group = std::min(std::max(1, involved), control_.size());
  if (o_.trial_ranks > 0) group = std::min(group, o_.trial_ranks);
  struct Branch {
    Planner planner;
    Trial trial;
  };
  std::deque<Branch> frontier;
  frontier.push_back({*planner_, wire::unpackTrial(first)});
  const auto slots = static_cast<std::size_t>(control_.size() - group + 1);
  while (wave.size() < slots && !frontier.empty()) {
    Branch b = std::move(frontier.front());
    frontier.pop_front();
    for (const bool met : {true, false}) {
      Planner p = b.planner;
      const auto models = b.trial.models();
      p.report(b.trial, met ? std::set<int>(models.begin(), models.end()) : std::set<int>{});
      auto next = p.next();
      if (!next || (o_.max_trials > 0 && next->number > o_.max_trials)) continue;
      const auto packed = wire::pack(*next);
      if (wave.size() < slots && std::find(wave.begin(), wave.end(), packed) == wave.end())
        wave.push_back(packed);
      frontier.push_back({std::move(p), std::move(*next)});
    }
  }
  std::string text = std::to_string(group);
  for (const auto& t : wave) text += "\x1e" + t;
  return text;
}

void MergeCoordinator::runWave(const std::vector<Trial>& wave, int group) {
  const int me = control_.rank();
  const double wave_start = elapsed();
  // Trial 0 on ranks 0..group-1, trial i > 0 on rank group + i - 1.
  auto ranksOf = [&](std::size_t i) {
    std::vector<int> r;
    if (i == 0) {
      for (int k = 0; k < group; ++k) r.push_back(k);
    } else {
      r.push_back(group + static_cast<int>(i) - 1);
    }
    return r;
  };
  const int index = me < group                                       ? 0
                    : me - group + 1 < static_cast<int>(wave.size()) ? me - group + 1
                                                                     : -1;
  const auto world = control_.split(index, me);
  std::string mine;
  if (world) {
    const auto& trial = wave[static_cast<std::size_t>(index)];
    // The trial sees the accepted plan of the tasks it can move, and trains only those.
    const auto accepted = accepted_;
    accepted_ = accepted.only(scope(trial));
    runner_.bind(*world, accepted_.with(trial).models());
    const auto before = score_;
    trial_world_ = world.get();
    auto e = evaluate(trial);
    trial_world_ = &control_;
    accepted_ = accepted;
    score_ = before;  // the commits below take the scores, in plan order
    const auto ranks = ranksOf(static_cast<std::size_t>(index));
    for (const int t : e.involved)
      e.holders[t] = ranks[static_cast<std::size_t>(runner_.holder(t))];
    runner_.hold();
    runner_.unbind();
    if (world->lead()) mine = packEvaluation(e);
  }
  std::vector<Evaluation> evals;
  {
    // The ranks wait here for each other's trials, as long as they are alive.
    dist::CollectiveScope wait("waiting for the wave's trials", nullptr, true);
    for (std::size_t i = 0; i < wave.size(); ++i) {
      const int lead = ranksOf(i).front();
      evals.push_back(unpackEvaluation(control_.share(me == lead ? mine : "", lead), wave[i]));
      evals.back().ranks = ranksOf(i);
    }
  }
  speculated_ += static_cast<int>(wave.size()) - 1;
  std::vector<double> busy(static_cast<std::size_t>(control_.size()), 0.0);
  std::set<int> changed;  // tasks whose committed state this wave's commits changed
  for (std::size_t i = 0; i < wave.size(); ++i) {
    for (const int r : evals[i].ranks) busy[static_cast<std::size_t>(r)] += evals[i].seconds;
  }
  for (std::size_t i = 0; i < wave.size(); ++i) {
    auto& e = evals[i];
    const int root = e.ranks.front();
    if (i > 0) {
      std::string same;
      if (control_.lead()) same = proposeNext(false) == wire::pack(wave[i]) ? "1" : "0";
      if (control_.share(same) != "1") break;  // the search went another way
    }
    bool stale = false;
    for (const int t : e.involved) stale = stale || changed.count(t) > 0;
    std::set<int> adopted = e.involved;
    if (stale) {
      const double t0 = elapsed();
      const bool kept = e.changed && validateCombined(e, root, changed, adopted);
      busy[static_cast<std::size_t>(root)] += elapsed() - t0;
      if (!kept) {
        log::info("merge",
                  "trial {} ({}) trained from a state the wave's earlier trials changed{}: "
                  "it runs again",
                  e.trial.number, e.trial.label,
                  e.changed ? ", and its combination with them misses" : "");
        break;
      }
      ++combined_;
    } else if (e.changed) {
      runner_.adopt(e.holders, control_);
    }
    if (control_.lead() && i > 0) planner_->next();  // the Planner hands out the trial it is
    if (e.changed) {
      for (const int t : adopted) {
        score_[t] = e.score[t];
        changed.insert(t);
      }
    }
    if (i > 0) ++used_;
    commit(e, e.seconds, e.ranks);
    results_.trials.back().started = wave_start;
  }
  const double wall = elapsed() - wave_start;
  for (std::size_t r = 0; r < busy.size(); ++r) {
    busy_[r] += busy[r];
    idle_[r] += std::max(0.0, wall - busy[r]);
  }
}

// On rank `root`, the plan the Planner would hold after the trial, tied from: the committed state
// with the trial's result for the tasks no earlier commit changed, and for the tasks both
// changed, the committed weights plus the trial's change to them (executor.h: stageGraft).
// Shared tensors come from the tasks the earlier commits changed.
bool MergeCoordinator::validateCombined(Evaluation& e, int root, const std::set<int>& changed,
                                        std::set<int>& adopted) {
  std::string plan_text;
  if (control_.lead()) {
    Planner probe = *planner_;
    probe.next();  // the trial itself, as the Planner hands it out
    probe.report(e.trial, e.decision.report_met);
    plan_text = wire::pack(probe.accepted());
  }
  const auto combined = wire::unpackPlan(control_.share(plan_text));
  // The tasks whose weights the combination can move: those connected to the trial's.
  std::set<int> from_result, with_delta,
      tasks = combined.connected({e.involved.begin(), e.involved.end()});
  for (const int t : e.involved) {
    tasks.insert(t);
    (changed.count(t) ? with_delta : from_result).insert(t);
  }
  std::string verdict;
  if (control_.rank() == root) {
    runner_.stageGraft(from_result, with_delta);
    const auto plan = combined.only(tasks);  // (tasks outside it keep their weights)
    std::vector<int> rank(static_cast<std::size_t>(runner_.tasks()), 1);
    for (const int t : changed) rank[static_cast<std::size_t>(t)] = 0;
    trial_world_ = &solo_;
    bool met = false;
    std::vector<double> scores;
    auto all_met = [&] {
      std::size_t k = 0;
      bool all = true;
      for (const int t : tasks) all = all && scores[k++] >= target_[static_cast<std::size_t>(t)];
      return all;
    };
    if (roomFor(1, 0)) {
      runner_.apply(plan, From::kStaged, accepted_.only(tasks), rank);
      auto options = trialOptions(e.trial);
      options.lr = e.lr;
      options.label = format("trial {}: with the wave's earlier trials", e.trial.number);
      scores = runner_.validate(plan, tasks, options);
      met = all_met();
      // As the partial check does: a short joint retraining of the combination, when it misses.
      if (!met && w_.search.recovery_fraction > 0 && roomFor(3, 1)) {
        const auto outcome = runner_.train(
            plan,
            recoveryOptions(options, w_.search.recovery_fraction, options.label + ", recovery"),
            {});
        noteTimes(outcome);
        if (!outcome.nan_loss) {
          scores = runner_.validate(plan, tasks, options);
          met = all_met();
        }
      }
    }
    trial_world_ = &control_;
    if (met) {
      runner_.accept();
      runner_.hold(false);
    }
    verdict = (met ? "1\n" : "0\n") + wire::packDoubles(scores);
  }
  {
    // The other ranks wait here for the combination's validation and recovery on `root`.
    dist::CollectiveScope wait("waiting for a combined validation", nullptr, true);
    verdict = control_.share(verdict, root);
  }
  const bool met = verdict[0] == '1';
  const auto scores = wire::unpackDoubles(verdict.substr(2));
  std::string text;
  std::size_t k = 0;
  for (const int t : tasks) {
    if (k >= scores.size()) break;  // not validated: no time left
    e.score[static_cast<std::size_t>(t)] = scores[k++];
    text +=
        format("{}{} {}/{}", text.empty() ? "" : ", ", w_.tasks[static_cast<std::size_t>(t)].name,
               formatFixed(e.score[static_cast<std::size_t>(t)], 3),
               formatFixed(target_[static_cast<std::size_t>(t)], 3));
  }
  log::info("merge", "trial {}: with the wave's earlier trials: {}{}", e.trial.number,
            text.empty() ? "no time left to validate" : text, met ? "" : "; it misses");
  if (!met) return false;
  std::map<int, int> roots;
  for (const int t : tasks) roots[t] = root;
  runner_.adopt(roots, control_);
  adopted = tasks;
  return true;
}

namespace {

template <typename Ints>
std::string packInts(const Ints& values) {
  return wire::packInts(std::vector<int64_t>(values.begin(), values.end()));
}

}  // namespace

// One field per line; numbers exactly (%a), so every rank commits the same values.
std::string MergeCoordinator::packEvaluation(const Evaluation& e) const {
  std::vector<double> seconds{e.lr, e.seconds};
  std::string ended = e.outcome.ended;
  std::replace(ended.begin(), ended.end(), '\n', ' ');
  std::vector<int> holders;
  for (const auto& [t, r] : e.holders) holders.insert(holders.end(), {t, r});
  const std::vector<std::string> fields = {
      e.decision.label,
      packInts(e.decision.report_met),
      packInts(e.decision.checked),
      wire::packDoubles(e.decision.check_scores),
      wire::packDoubles(e.outcome.scores),
      packInts(e.outcome.met),
      packInts(e.outcome.dropped),
      packInts(std::vector<int64_t>{e.outcome.nan_loss ? 1 : 0, e.outcome.steps, e.backoffs,
                                    e.changed ? 1 : 0}),
      wire::packDoubles(seconds),
      packInts(e.involved),
      wire::packDoubles(e.score),
      packInts(holders),
      ended};
  std::string text;
  for (const auto& f : fields) text += f + "\n";
  return text;
}

MergeCoordinator::Evaluation MergeCoordinator::unpackEvaluation(const std::string& text,
                                                                const Trial& trial) const {
  std::vector<std::string> f;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) f.push_back(line);
  f.resize(13);
  Evaluation e;
  e.trial = trial;
  e.decision.label = f[0];
  for (const auto v : wire::unpackInts(f[1])) e.decision.report_met.insert(static_cast<int>(v));
  for (const auto v : wire::unpackInts(f[2])) e.decision.checked.push_back(static_cast<int>(v));
  e.decision.check_scores = wire::unpackDoubles(f[3]);
  e.outcome.scores = wire::unpackDoubles(f[4]);
  for (const auto v : wire::unpackInts(f[5])) e.outcome.met.push_back(v != 0);
  for (const auto v : wire::unpackInts(f[6])) e.outcome.dropped.push_back(v != 0);
  const auto flags = wire::unpackInts(f[7]);
  GEMEL_ASSERT(flags.size() == 4, "malformed trial evaluation from another rank");
  e.outcome.nan_loss = flags[0] != 0;
  e.outcome.steps = flags[1];
  e.backoffs = static_cast<int>(flags[2]);
  e.changed = flags[3] != 0;
  const auto seconds = wire::unpackDoubles(f[8]);
  GEMEL_ASSERT(seconds.size() == 2, "malformed trial evaluation from another rank");
  e.lr = seconds[0];
  e.seconds = seconds[1];
  for (const auto v : wire::unpackInts(f[9])) e.involved.insert(static_cast<int>(v));
  e.score = wire::unpackDoubles(f[10]);
  const auto pairs = wire::unpackInts(f[11]);
  for (std::size_t k = 0; k + 1 < pairs.size(); k += 2)
    e.holders[static_cast<int>(pairs[k])] = static_cast<int>(pairs[k + 1]);
  e.outcome.ended = f[12];
  return e;
}

void MergeCoordinator::printTable() const {
  if (!control_.lead() || !o_.print_table) return;
  std::printf("%-5s %-34s %-9s %-10s %s\n", "trial", "layers tried", "met", "decision",
              "score/target per task, saved so far, seconds");
  for (const auto& rec : results_.trials) {
    printTrialRow(rec, target_, w_, runner_.catalog().totalBytes());
  }
  std::fflush(stdout);
}

}  // namespace gemel::merge
