#pragma once
// MergeCoordinator: the search itself (docs/merging.md). Every rank runs
// it; rank 0 (the lead) alone holds the Planner. It holds the policy and nothing else: the
// training, weights and results file are the TrialExecutor's (executor.h), the agreement
// between ranks the World's, so every path of the policy runs against a scripted fake executor
// in the unit tests. Per trial:
//   1. the lead proposes the next trial (Planner::next) and shares it;
//   2. every rank ties the accepted plan plus the trial (a new shared layer starts from the
//      weights of the member with the least headroom above its target) and retrains its tasks
//      (TrialExecutor::apply, train);
//   3. the decision policy: accepted when every involved task met its target; else, when at
//      least two of the trial's models met theirs, the partial check: a plan that keeps the
//      trial's layers for those models, the others back at their accepted weights. A tensor
//      they share with the models that met (an earlier group) takes the met models' value, or,
//      if that validates worse, its value before the trial. When some task is then below
//      target, every model of that plan retrains jointly for a short recovery
//      (search.recovery_fraction of a trial). Accepted only if every task then validates at
//      target; else rejected (or failed, on a NaN loss);
//   4. the lead reports the outcome to the Planner and shares the accepted plan; everyone
//      adopts it, and the lead records results.h5 (after every trial).
// A collapse (a non-finite loss, or a task that ends far below its target: see collapse()) is
// a step-size problem, not a verdict on the sharing: the trial starts again from the accepted
// weights with the learning rate times kBackoff, up to kMaxBackoffs times (not with
// --fixed-steps). After the first back-off, only a collapse of at least half of the trial's
// models (or a non-finite loss) backs off again: fewer models falling again at a smaller step
// is a verdict on those models, which the decision leaves out (a partial trial). A trial that
// would be retried ends as soon as enough of its tasks are dropped below their collapse floors
// (TrainOptions::end_after_collapses), rather than training the others on first. search.lr is thus
// the trials' starting step, their ceiling. Every trial ramps its step up linearly over its first
// kTrialWarmupEpochs: a new shared layer seeded from another model meets features it was not
// trained on, and its first gradients are the largest. The search remembers the step that worked: a
// trial starts at search.lr times kBackoff to the power of the back-offs of every accepted trial
// (on --resume, counted from the recorded trials), so that a workload whose models need a smaller
// step pays for finding it once, not per trial. Other trials leave it: one that collapsed at every
// step says nothing about the step, and in a partial one the back-offs were often for the model the
// sharing then left out (one that cannot take the sharing at any step), which would shrink
// everyone's step trial by trial. A time budget (MergeOptions::time_budget) ends the search when
// spent, caps each trial's seconds by what is left, and adds the Planner's second pass: groups not
// yet shared by all their models are tried again at kSecondPassLr x the step for kSecondPassBudget
// x the budget. A resumed run (--resume) replays the recorded outcomes through a fresh Planner
// first.
// With MergeOptions::parallel_trials on several ranks, every rank holds every task and the search
// runs in waves (runParallel): the next trial on a rank group of a rank per task it trains, each
// rank left on a trial the search may try next; the wave commits in plan order, a trial that
// trained from a state the wave's earlier commits changed only after its combination with them
// validates (validateCombined). docs/distributed.md tells the whole rule.
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gemel/dist/world.h"
#include "gemel/io/results.h"
#include "gemel/merge/executor.h"
#include "gemel/merge/planner.h"
#include "gemel/merge/search.h"

namespace gemel::merge {

class MergeCoordinator {
 public:
  MergeCoordinator(const config::Workload& workload, const std::string& workload_path,
                   const MergeOptions& options, TrialExecutor& executor, const dist::World& world);
  ~MergeCoordinator();
  MergeCoordinator(const MergeCoordinator&) = delete;
  MergeCoordinator& operator=(const MergeCoordinator&) = delete;

  // Runs the search to its end (or options.max_trials) and returns what results.h5 holds.
  // `previous`: the results of an earlier run to resume from (every rank passes them).
  io::Results run(const std::optional<io::Results>& previous = std::nullopt);

 private:
  struct Decision {
    std::string label;         // accepted, partial k/n, rejected, failed (NaN)
    std::set<int> report_met;  // what the Planner is told met
    std::vector<int> checked;  // the partial check's tasks and scores, if there was one
    std::vector<double> check_scores;
  };
  // What one trial's procedure found (train, back-offs, decision, partial check), from the
  // state it started in; commit() takes it into the search.
  struct Evaluation {
    Trial trial;
    std::set<int> involved;
    Decision decision;
    train::TrialResult outcome;
    int backoffs = 0;
    double lr = 0;               // the step it ended at
    double start = 0;            // elapsed() when it started
    double seconds = 0;          // its wall time
    std::vector<double> score;   // every task's score after it, as its rank saw them
    bool changed = false;        // it took a new state (accepted, partial)
    std::vector<int> ranks;      // the job ranks that ran it (parallel trials)
    std::map<int, int> holders;  // task -> the job rank that holds its result
  };
  Evaluation evaluate(const Trial& trial);
  void commit(const Evaluation& e, double seconds, const std::vector<int>& ranks);
  // Parallel trials (MergeOptions::parallel_trials, on more than one rank): every rank runs a
  // trial of the wave the lead plans, and the wave commits in plan order (coordinator.cpp).
  void runParallel();
  std::string planWave();
  // The tasks a trial can move in parallel mode: its models and every model that shares a
  // layer with them, once it is added to the accepted plan (the sequential search retrains
  // every model that shares any layer).
  std::set<int> scope(const Trial& trial) const;
  // Trial 0 of the wave on ranks 0..group-1, the others one rank each after them.
  void runWave(const std::vector<Trial>& wave, int group);
  // A trial that trained from a state the wave's earlier commits changed: its result with
  // theirs, validated on rank `root`. True (and the committed state of `adopted` updated, its
  // scores in e.score) if every task meets its target.
  bool validateCombined(Evaluation& e, int root, const std::set<int>& changed,
                        std::set<int>& adopted);
  std::string packEvaluation(const Evaluation& e) const;
  Evaluation unpackEvaluation(const std::string& text, const Trial& trial) const;
  void startFresh();
  void resume(const io::Results& previous);
  static constexpr double kBackoff = 0.25, kSecondPassLr = 0.25, kSecondPassBudget = 2;
  static constexpr int kMaxBackoffs = 2;
  static constexpr double kTrialWarmupEpochs = 0.25;
  static constexpr double kMinAllowance = 0.02;  // score a collapse must lose below target
  // `take`: from the Planner; else what it would propose, leaving it as it is.
  std::string proposeNext(bool take = true);
  void capToBudget(train::TrainOptions& to) const;
  // The score below which task m has collapsed: its target less the largest of what the target
  // lets it lose (unmerged score - target), its headroom now (score - target) and kMinAllowance.
  double collapseFloor(int m) const;
  io::TrialRecord trialRecord(const Trial& trial, const std::set<int>& involved,
                              const train::TrialResult& outcome, const Decision& decision) const;
  // Whether a collapse after `backoffs` back-offs is retried at a smaller step.
  bool retried(int backoffs) const;
  // `fallen`: how many tasks fell that far.
  std::string collapse(const std::set<int>& involved, const train::TrialResult& outcome,
                       int& fallen) const;
  train::TrainOptions trialOptions(const Trial& trial) const;
  void runTrial(const Trial& trial);
  void logTargets() const;
  Decision decide(const Trial& trial, const train::TrialResult& outcome,
                  const train::TrainOptions& options);
  bool checkPartial(const Trial& trial, const std::set<int>& met,
                    const train::TrainOptions& options, Decision& decision);
  void record(const std::string& status);
  void printTable() const;
  void printReport() const;
  double elapsed() const;
  // Whether what is left of the time budget holds `validations` validations and `steps` steps
  // at the longest validation and the mean step measured so far (always, without a budget), as
  // the lead sees it: every rank gets its answer, so every rank must ask.
  bool roomFor(int validations, int steps) const;
  void noteTimes(const train::TrialResult& outcome);  // validation_seconds_, step_seconds_

  const config::Workload& w_;
  const std::string workload_path_, results_path_;
  const MergeOptions& o_;
  using From = TrialExecutor::From;
  TrialExecutor& runner_;
  const dist::World& control_;
  const bool parallel_;              // trials in parallel, each on one rank
  dist::SingleWorld solo_;           // a trial's world in parallel mode
  const dist::World* trial_world_;   // what a trial's procedure agrees over
  std::vector<double> busy_, idle_;  // parallel: each rank's seconds in trials, and waiting
  int speculated_ = 0, used_ = 0, combined_ = 0;  // parallel: trials run ahead, kept, combined
  std::unique_ptr<Planner> planner_;              // the lead's
  std::chrono::steady_clock::time_point start_;
  SharingPlan accepted_;
  std::vector<double> unmerged_, target_, score_;
  double lr_scale_ = 1;  // kBackoff ^ (back-offs so far): the step that worked
  // The longest validation and the latest mean step time of the trials so far (the lead's).
  double validation_seconds_ = 0, step_seconds_ = 0;
  double record_seconds_ = 0;  // the longest write of results.h5 so far (every rank's wait)
  io::Results results_;
  std::string end_reason_;  // the lead's: why the search ended
};

}  // namespace gemel::merge
