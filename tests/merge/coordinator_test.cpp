// The merge policy (MergeCoordinator) against a scripted executor: each test scripts which
// tasks meet their targets in which training or validation and checks the decisions, the
// states the coordinator restores, stages and accepts, and what it records. No training: each
// test runs in milliseconds.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "fake_executor.h"
#include "gemel/core/error.h"
#include "gemel/dist/world.h"
#include "gemel/merge/coordinator.h"
#include "layer_fixtures.h"
#include "test_support.h"

namespace gemel::merge {
namespace {

using testing::FakeExecutor;
using From = TrialExecutor::From;

models::LayerInfo conv(const std::string& module, int64_t channels) {
  return testing::conv3x3(module, channels, channels);
}

// Three models A, B, C (tasks 0, 1, 2). Group 0: four 16x16 convs in all three; group 1: two
// 8x8 convs in all three; group 2: one 4x4 conv in B and C.
LayerCatalog catalog() {
  std::vector<CatalogModel> models;
  for (const std::string name : {"A", "B", "C"}) {
    CatalogModel m;
    m.name = name;
    m.arch = "test";
    for (int i = 0; i < 4; ++i) m.layers.push_back(conv("big" + std::to_string(i), 16));
    for (int i = 0; i < 2; ++i) m.layers.push_back(conv("mid" + std::to_string(i), 8));
    if (name != "A") m.layers.push_back(conv("small", 4));
    for (const auto& l : m.layers) m.total_bytes += l.bytes;
    models.push_back(m);
  }
  return LayerCatalog(models);
}

// Unmerged scores; targets are 0.95 of them: 0.76, 0.855, 0.665.
const std::vector<double> kUnmerged = {0.80, 0.90, 0.70};

class Policy : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto path = dir_.file("w.yaml");
    testing::writeText(path, "name: fake\n");
    workload_.name = "fake";
    workload_.source_file = path;
    for (const std::string name : {"A", "B", "C"}) {
      config::TaskConfig t;
      t.name = name;
      t.arch = "test";
      t.num_classes = 2;
      workload_.tasks.push_back(t);
    }
    options_.out_dir = dir_.path();
    options_.print_table = false;
  }

  io::Results run(FakeExecutor& fake, const std::optional<io::Results>& previous = {}) {
    MergeCoordinator coordinator(workload_, workload_.source_file, options_, fake, world_);
    return coordinator.run(previous);
  }

  // A trial's number and its part's group, from the trial's training label ("trial 2 (group
  // 1 ...)"); -1 for any other training (a recovery).
  static int trialOf(const FakeExecutor::TrainCall& c) {
    if (c.options.label.find("recovery") != std::string::npos) return -1;
    return std::stoi(c.options.label.substr(6));
  }
  static bool trains(const FakeExecutor::TrainCall& c, int group) {
    for (const auto& [key, members] : c.plan.instances()) {
      (void)members;
      if (key.first == group) return true;
    }
    return false;
  }
  // The trial's own groups: those its plan has beyond the accepted plan it started from.
  static std::set<int> newGroups(const FakeExecutor::TrainCall& c, const SharingPlan& accepted) {
    std::set<int> out;
    for (const auto& [key, members] : c.plan.instances()) {
      const auto it = accepted.instances().find(key);
      if (it == accepted.instances().end() || it->second != members) out.insert(key.first);
    }
    return out;
  }
  static std::map<int, double> atTarget(const FakeExecutor::TrainCall& c, double over = 0.01) {
    std::map<int, double> out;
    for (const int t : c.plan.models()) out[t] = kUnmerged[t] * 0.95 + over;
    return out;
  }
  static const io::TrialRecord& trial(const io::Results& r, int number) {
    return r.trials.at(static_cast<std::size_t>(number - 1));
  }

  testing::TempDir dir_;
  config::Workload workload_;
  MergeOptions options_;
  dist::SingleWorld world_;
};

TEST_F(Policy, AcceptsEveryTrialWhoseTasksAllMeetTheirTargets) {
  FakeExecutor fake(catalog(), kUnmerged);
  fake.on_train = [](const FakeExecutor::TrainCall& c) { return atTarget(c); };
  const auto r = run(fake);
  ASSERT_EQ(r.trials.size(), 3u);
  for (const auto& t : r.trials) EXPECT_EQ(t.decision, "accepted") << t.label;
  EXPECT_EQ(r.achieved_savings, catalog().savingsBytes());
  EXPECT_EQ(r.status, "done");
  // The accepted state is taken once at the start and once per accepted trial.
  EXPECT_EQ(fake.count("accept"), 4);
  EXPECT_EQ(fake.count("stage"), 0);  // no partial check
  for (int t = 0; t < 3; ++t)
    EXPECT_NEAR(r.tasks[t].final_score, kUnmerged[t] * 0.95 + 0.01, 1e-12);
}

// Trial 1 (group 0) leaves B and C below target: only one candidate met, so the trial is
// rejected without a partial check, and everything goes back to the accepted weights.
TEST_F(Policy, RejectsATrialWithFewerThanTwoModelsAtTargetAndRestoresTheAcceptedWeights) {
  FakeExecutor fake(catalog(), kUnmerged);
  fake.on_train = [](const FakeExecutor::TrainCall& c) {
    if (trialOf(c) == 1) return std::map<int, double>{{0, 0.79}, {1, 0.83}, {2, 0.64}};
    return atTarget(c);
  };
  const auto r = run(fake);
  EXPECT_EQ(trial(r, 1).decision, "rejected");
  EXPECT_EQ(fake.count("stage"), 0);
  EXPECT_EQ(trial(r, 1).met, (std::vector<std::string>{"A"}));
  // The record written after trial 1: nothing shared, every score as before the trial.
  const auto& after1 = fake.records.at(1);
  ASSERT_EQ(after1.trials.size(), 1u);
  EXPECT_EQ(after1.plan_json, "[]");
  for (int t = 0; t < 3; ++t) EXPECT_EQ(after1.tasks[t].final_score, kUnmerged[t]);
  // The next trial starts from the accepted weights, not from trial 1's damage.
  ASSERT_GE(fake.trains.size(), 2u);
  EXPECT_EQ(fake.trains[1].scores, kUnmerged);
  // And the rejected group is retried by half (the planner's business).
  EXPECT_EQ(fake.trains[1].plan.instances().size(), 2u);
}

// Trial 1 (group 0): A and B meet, C does not. The partial check keeps group 0 for A and B,
// C back at its accepted weights (staged), and accepts after validating them at target.
TEST_F(Policy, PartialConfirmationKeepsTheModelsThatMet) {
  FakeExecutor fake(catalog(), kUnmerged);
  fake.on_train = [](const FakeExecutor::TrainCall& c) {
    auto s = atTarget(c);
    if (c.candidates.count(2) && newGroups(c, {}).count(0)) s[2] = 0.64;  // C misses group 0
    return s;
  };
  const auto r = run(fake);
  EXPECT_EQ(trial(r, 1).decision, "partial 2/3");
  EXPECT_EQ(trial(r, 1).checked, (std::vector<std::string>{"A", "B"}));
  // stage({C}), then the tentative plan tied from the staged state and validated.
  std::size_t k = 0;
  while (k < fake.events.size() && fake.events[k].what != "stage") ++k;
  ASSERT_LT(k + 2, fake.events.size());
  EXPECT_EQ(fake.events[k].tasks, (std::set<int>{2}));
  EXPECT_EQ(fake.events[k + 1].what, "apply");
  EXPECT_EQ(fake.events[k + 1].from, From::kStaged);
  EXPECT_EQ(fake.events[k + 1].plan.models(), (std::set<int>{0, 1}));
  EXPECT_EQ(fake.events[k + 2].what, "validate");
  // Group 0's instances are shared by A and B only; C kept its unmerged score.
  const auto after1 = SharingPlan::fromJson(fake.records.at(1).plan_json, "record");
  EXPECT_EQ(after1.models(), (std::set<int>{0, 1}));
  EXPECT_EQ(fake.records.at(1).tasks[2].final_score, kUnmerged[2]);
  EXPECT_GE(r.tasks[2].final_score, r.tasks[2].target);
}

// The partial check finds A below target; the models of the tentative plan retrain jointly
// for recovery_fraction of a trial, and the trial is accepted when all then validate at target.
TEST_F(Policy, PartialCheckRecoversATaskBelowTargetByRetrainingBriefly) {
  FakeExecutor fake(catalog(), kUnmerged);
  bool a_low = false;
  fake.on_train = [&](const FakeExecutor::TrainCall& c) {
    if (trialOf(c) == -1) {
      a_low = false;
      return atTarget(c);
    }
    auto s = atTarget(c);
    if (trialOf(c) == 1) {
      s[2] = 0.64;   // C misses
      a_low = true;  // and A validates below target once the trial's state is staged
    }
    return s;
  };
  fake.on_validate = [&](const FakeExecutor::Event&) {
    return a_low ? std::map<int, double>{{0, 0.70}} : std::map<int, double>{};
  };
  workload_.search.recovery_fraction = 0.25;
  options_.max_steps_per_trial = 40;
  const auto r = run(fake);
  EXPECT_EQ(trial(r, 1).decision, "partial 2/3");
  // One recovery training, of the tentative plan's models, a quarter of a trial's budget.
  ASSERT_GE(fake.trains.size(), 2u);
  const auto& recovery = fake.trains[1];
  EXPECT_NE(recovery.options.label.find("trial 1: partial check recovery"), std::string::npos);
  EXPECT_EQ(recovery.plan.models(), (std::set<int>{0, 1}));
  EXPECT_TRUE(recovery.candidates.empty());
  EXPECT_EQ(recovery.options.max_steps, 10);
  EXPECT_DOUBLE_EQ(recovery.options.epochs, fake.trains[0].options.epochs * 0.25);
  EXPECT_GE(trial(r, 1).check_scores.at(0), r.tasks[0].target);

  // Without recovery the same trial is rejected.
  workload_.search.recovery_fraction = 0;
  FakeExecutor again(catalog(), kUnmerged);
  again.on_train = fake.on_train;
  again.on_validate = fake.on_validate;
  const auto r2 = run(again);
  EXPECT_EQ(trial(r2, 1).decision, "rejected");
  EXPECT_EQ(trial(r2, 1).check_scores.at(0), 0.70);
}

// Trial 1 shares group 0 among all three. In trial 2 (group 1) A and B meet, C misses; the
// partial check first takes group 0 as A and B left it (C is then below target), then as it
// was before the trial (C's, which every sharer held): all at target, so that state is kept.
TEST_F(Policy, PartialCheckFallsBackToTheSharedLayersAsBeforeTheTrial) {
  FakeExecutor fake(catalog(), kUnmerged);
  fake.on_train = [](const FakeExecutor::TrainCall& c) {
    auto s = atTarget(c);
    if (trialOf(c) == 2) s[2] = 0.64;
    return s;
  };
  fake.on_validate = [&](const FakeExecutor::Event&) {
    const auto& e = [&]() -> const FakeExecutor::Event& {
      for (auto it = fake.events.rbegin(); it != fake.events.rend(); ++it)
        if (it->what == "apply") return *it;
      throw std::logic_error("no apply");
    }();
    // Staged with group 0 from the models that met (rank[C] = 1): C is hurt.
    if (e.from == From::kStaged && e.rank.size() == 3 && e.rank[2] == 1)
      return std::map<int, double>{{2, 0.5}};
    return std::map<int, double>{};
  };
  workload_.search.recovery_fraction = 0;
  const auto r = run(fake);
  EXPECT_EQ(trial(r, 1).decision, "accepted");
  EXPECT_EQ(trial(r, 2).decision, "partial 2/3");
  EXPECT_EQ(trial(r, 2).checked, (std::vector<std::string>{"A", "B", "C"}));
  EXPECT_GE(trial(r, 2).check_scores.at(2), r.tasks[2].target);
  // Both states were validated, the pre-trial one last, and then accepted.
  std::vector<std::vector<int>> tied;
  for (const auto& e : fake.events) {
    if (e.what == "apply" && e.from == From::kStaged) tied.push_back(e.rank);
  }
  ASSERT_EQ(tied.size(), 2u);
  EXPECT_EQ(tied[0], (std::vector<int>{0, 0, 1}));
  EXPECT_EQ(tied[1], (std::vector<int>{1, 1, 0}));
}

// Trial 1 shares group 0 among all three; trial 3 (group 2: B and C) meets for B and C but
// leaves A, an earlier sharer that is not one of its models, below target: rejected.
TEST_F(Policy, RejectsATrialThatLeavesAnEarlierSharerBelowTarget) {
  FakeExecutor fake(catalog(), kUnmerged);
  fake.on_train = [](const FakeExecutor::TrainCall& c) {
    auto s = atTarget(c);
    if (trialOf(c) == 3) s[0] = 0.75;
    return s;
  };
  const auto r = run(fake);
  ASSERT_EQ(r.trials.size(), 3u);
  EXPECT_EQ(trial(r, 3).label.find("group 2"), 0u);
  EXPECT_EQ(trial(r, 3).models, (std::vector<std::string>{"B", "C"}));
  EXPECT_EQ(trial(r, 3).decision, "rejected");
  EXPECT_EQ(fake.count("stage"), 0);
  EXPECT_EQ(r.achieved_savings,
            catalog().groups()[0].bytes_saved + catalog().groups()[1].bytes_saved);
  EXPECT_GE(r.tasks[0].final_score, r.tasks[0].target);
}

TEST_F(Policy, ANonFiniteLossFailsTheTrialWithoutAPartialCheck) {
  FakeExecutor fake(catalog(), kUnmerged);
  fake.on_train = [](const FakeExecutor::TrainCall& c) {
    auto s = atTarget(c);
    if (trialOf(c) == 1) s[2] = std::nan("");  // A and B met, but the loss went NaN
    return s;
  };
  const auto r = run(fake);
  EXPECT_EQ(trial(r, 1).decision, "failed (NaN)");
  EXPECT_EQ(trial(r, 1).backoffs, 2);  // a step problem first: retried at smaller steps
  EXPECT_EQ(fake.count("stage"), 0);
  EXPECT_EQ(fake.records.at(1).plan_json, "[]");
}

TEST_F(Policy, MaxTrialsEndsTheSearch) {
  FakeExecutor fake(catalog(), kUnmerged);
  fake.on_train = [](const FakeExecutor::TrainCall& c) { return atTarget(c); };
  options_.max_trials = 2;
  const auto r = run(fake);
  EXPECT_EQ(r.trials.size(), 2u);
  EXPECT_EQ(fake.trains.size(), 2u);
  EXPECT_EQ(r.status, "done");
}

// A run stopped after two trials and resumed from its record ends where an uninterrupted run
// ends, without training the first two trials again.
TEST_F(Policy, ResumeReplaysTheRecordedTrialsAndGoesOn) {
  auto script = [](const FakeExecutor::TrainCall& c) {
    auto s = atTarget(c);
    if (trialOf(c) == 1) s[2] = 0.64;  // partial
    if (trialOf(c) == 2) s[1] = 0.83;  // rejected
    return s;
  };
  FakeExecutor whole(catalog(), kUnmerged);
  whole.on_train = script;
  const auto full = run(whole);
  ASSERT_GE(full.trials.size(), 4u);

  options_.max_trials = 2;
  FakeExecutor first(catalog(), kUnmerged);
  first.on_train = script;
  const auto part = run(first);
  ASSERT_EQ(part.trials.size(), 2u);

  options_.max_trials = 0;
  FakeExecutor second(catalog(), kUnmerged);
  second.on_train = script;
  const auto resumed = run(second, part);
  EXPECT_EQ(second.count("restore"), 1);
  ASSERT_EQ(resumed.trials.size(), full.trials.size());
  for (std::size_t i = 0; i < full.trials.size(); ++i) {
    EXPECT_EQ(resumed.trials[i].label, full.trials[i].label);
    EXPECT_EQ(resumed.trials[i].decision, full.trials[i].decision);
  }
  EXPECT_EQ(resumed.plan_json, full.plan_json);
  EXPECT_EQ(second.trains.size() + first.trains.size(), whole.trains.size());
  EXPECT_EQ(second.trains.front().options.label.rfind("trial 3 ", 0), 0u);

  // A record whose trials this search would not propose is refused.
  auto altered = part;
  altered.trials[0].label = "group 1 (2 layers)";
  FakeExecutor third(catalog(), kUnmerged);
  EXPECT_THROW(run(third, altered), ConfigError);
}

}  // namespace
}  // namespace gemel::merge

namespace gemel::merge {
namespace {

using testing::FakeExecutor;

// Trial 1: C collapses (0.70 -> 0.10 against a 0.665 target) at the workload's step and meets
// its target at a quarter of it: retried from the accepted weights, and accepted; the trials
// after it start at that quarter.
TEST_F(Policy, ACollapseIsRetriedWithASmallerStepAndAccepted) {
  FakeExecutor fake(catalog(), kUnmerged);
  const double lr = workload_.search.lr;
  fake.on_train = [lr](const FakeExecutor::TrainCall& c) {
    auto s = atTarget(c);
    if (trialOf(c) == 1 && c.options.lr >= lr) s[2] = 0.10;
    return s;
  };
  const auto r = run(fake);
  EXPECT_EQ(trial(r, 1).decision, "accepted");
  EXPECT_EQ(trial(r, 1).backoffs, 1);
  EXPECT_DOUBLE_EQ(trial(r, 1).lr, lr * 0.25);
  ASSERT_GE(fake.trains.size(), 2u);
  EXPECT_DOUBLE_EQ(fake.trains[1].options.lr, lr * 0.25);
  // The retry started from the accepted weights, not from the collapsed ones.
  EXPECT_EQ(fake.trains[1].scores, kUnmerged);
  EXPECT_EQ(r.achieved_savings, catalog().savingsBytes());
  // The next trial starts at the step that worked, and records it.
  ASSERT_GE(fake.trains.size(), 3u);
  EXPECT_EQ(trialOf(fake.trains[2]), 2);
  EXPECT_DOUBLE_EQ(fake.trains[2].options.lr, lr * 0.25);
  EXPECT_EQ(trial(r, 2).backoffs, 0);
  EXPECT_DOUBLE_EQ(trial(r, 2).lr, lr * 0.25);
  // Every trial ramps its step up over its first quarter epoch.
  EXPECT_DOUBLE_EQ(fake.trains[0].options.warmup_epochs, 0.25);

  // So does a resumed search, from its record's back-offs.
  options_.max_trials = 1;
  FakeExecutor first(catalog(), kUnmerged);
  first.on_train = fake.on_train;
  const auto part = run(first);
  ASSERT_EQ(part.trials.size(), 1u);
  options_.max_trials = 0;
  FakeExecutor second(catalog(), kUnmerged);
  second.on_train = fake.on_train;
  run(second, part);
  ASSERT_FALSE(second.trains.empty());
  EXPECT_EQ(trialOf(second.trains[0]), 2);
  EXPECT_DOUBLE_EQ(second.trains[0].options.lr, lr * 0.25);
}

// The rules the trainer obeys in training (merge/trial_rules.h), driven here through scripted
// validations: trial 1's C makes no progress, so at the third validation (1 epoch in) the rules
// drop it; A and B then meet their targets and the trial ends early; the coordinator keeps the
// group for A and B (partial 2/3). (A rule that never drops a candidate keeps C in, and the
// trial runs to its last validation: dropped, ended and steps all differ.)
TEST_F(Policy, TheRulesDropAHopelessCandidateAndTheTrialEndsPartial) {
  FakeExecutor fake(catalog(), kUnmerged);
  fake.on_validations = [](const FakeExecutor::TrainCall& c) {
    if (trialOf(c) != 1) return std::vector<std::map<int, double>>{{}, atTarget(c)};
    return std::vector<std::map<int, double>>{{{0, 0.70}, {1, 0.80}, {2, 0.60}},
                                              {{0, 0.74}, {1, 0.84}, {2, 0.60}},
                                              {{0, 0.77}, {1, 0.86}, {2, 0.60}},
                                              {{0, 0.78}, {1, 0.87}, {2, 0.60}}};
  };
  const auto r = run(fake);
  EXPECT_EQ(trial(r, 1).dropped, (std::vector<std::string>{"C"}));
  EXPECT_EQ(trial(r, 1).ended, "every remaining task meets its target");
  EXPECT_EQ(trial(r, 1).steps, 10);  // ended at the third validation, not the fourth
  EXPECT_EQ(trial(r, 1).decision, "partial 2/3");
  EXPECT_EQ(trial(r, 1).checked, (std::vector<std::string>{"A", "B"}));
}

// C falls far below its collapse floor and stays there: the rules drop it at the third
// validation and end the trial as collapsed; the coordinator retries the trial at a quarter of
// the step, where everything meets its target.
TEST_F(Policy, TheRulesEndACollapsedTrialAndTheSearchRetriesItAtASmallerStep) {
  FakeExecutor fake(catalog(), kUnmerged);
  const double lr = workload_.search.lr;
  fake.on_validations = [lr](const FakeExecutor::TrainCall& c) {
    if (trialOf(c) == 1 && c.options.lr >= lr) {
      auto s = atTarget(c);
      s[2] = 0.30;
      return std::vector<std::map<int, double>>{{}, s, s, s};
    }
    return std::vector<std::map<int, double>>{{}, atTarget(c)};
  };
  const auto r = run(fake);
  ASSERT_GE(fake.trains.size(), 2u);
  EXPECT_EQ(trialOf(fake.trains[1]), 1);
  EXPECT_DOUBLE_EQ(fake.trains[1].options.lr, lr * 0.25);
  EXPECT_EQ(trial(r, 1).backoffs, 1);
  EXPECT_EQ(trial(r, 1).decision, "accepted");
}

// A partial trial leaves the step: C collapses at the workload's step, then at a quarter of it
// misses its target narrowly and is left out; trial 2 starts at the workload's step again.
TEST_F(Policy, APartialTrialDoesNotShrinkTheNextTrialsStep) {
  FakeExecutor fake(catalog(), kUnmerged);
  const double lr = workload_.search.lr;
  fake.on_train = [lr](const FakeExecutor::TrainCall& c) {
    auto s = atTarget(c);
    if (trialOf(c) == 1) s[2] = c.options.lr >= lr ? 0.10 : 0.64;  // target 0.665
    return s;
  };
  const auto r = run(fake);
  EXPECT_EQ(trial(r, 1).decision.rfind("partial", 0), 0u) << trial(r, 1).decision;
  EXPECT_EQ(trial(r, 1).backoffs, 1);
  const FakeExecutor::TrainCall* second = nullptr;
  for (const auto& c : fake.trains) second = !second && trialOf(c) == 2 ? &c : second;
  ASSERT_NE(second, nullptr);
  EXPECT_DOUBLE_EQ(second->options.lr, lr);
}

// C collapses at every step while A and B are fine: after one back-off its fall is a verdict on
// C, not on the step: no second back-off, and the trial keeps the sharing for A and B.
TEST_F(Policy, AModelThatFallsAgainAtASmallerStepIsLeftOut) {
  FakeExecutor fake(catalog(), kUnmerged);
  fake.on_train = [](const FakeExecutor::TrainCall& c) {
    auto s = atTarget(c);
    if (trialOf(c) == 1) s[2] = 0.10;
    return s;
  };
  const auto r = run(fake);
  EXPECT_EQ(trial(r, 1).backoffs, 1);
  EXPECT_EQ(trial(r, 1).decision.rfind("partial 2/3", 0), 0u) << trial(r, 1).decision;
  EXPECT_EQ(trial(r, 1).met, (std::vector<std::string>{"A", "B"}));
}

// A task that misses its target by less than the target allows it to lose is a verdict on the
// sharing, not a collapse: no retry. A collapse at every step is retried twice, then rejected.
TEST_F(Policy, ANarrowMissIsNotRetriedAndRetriesAreBounded) {
  FakeExecutor narrow(catalog(), kUnmerged);
  narrow.on_train = [](const FakeExecutor::TrainCall& c) {
    auto s = atTarget(c);
    if (trialOf(c) == 1) s[1] = 0.83, s[2] = 0.64;  // 0.855 and 0.665 targets
    return s;
  };
  const auto r = run(narrow);
  EXPECT_EQ(trial(r, 1).decision, "rejected");
  EXPECT_EQ(trial(r, 1).backoffs, 0);
  EXPECT_EQ(narrow.trains.at(1).options.label.rfind("trial 2 ", 0), 0u);

  FakeExecutor always(catalog(), kUnmerged);
  always.on_train = [](const FakeExecutor::TrainCall& c) {
    auto s = atTarget(c);
    if (trialOf(c) == 1) s[1] = 0.1, s[2] = 0.1;
    return s;
  };
  const auto r2 = run(always);
  EXPECT_EQ(trial(r2, 1).decision, "rejected");
  EXPECT_EQ(trial(r2, 1).backoffs, 2);
  EXPECT_EQ(always.trains.at(3).options.label.rfind("trial 2 ", 0), 0u);
  // The trainer ends an attempt early when a collapse there would be retried: on one collapse
  // at first, then on half of the trial's 3 models, and never on the last attempt. The floors
  // are the scores the decision calls a collapse: C (0.70, target 0.665) below 0.63.
  EXPECT_EQ(always.trains.at(0).options.end_after_collapses, 1);
  EXPECT_EQ(always.trains.at(1).options.end_after_collapses, 2);
  EXPECT_EQ(always.trains.at(2).options.end_after_collapses, 0);
  ASSERT_EQ(always.trains.at(0).options.collapse_floor.size(), 3u);
  EXPECT_NEAR(always.trains.at(0).options.collapse_floor[2], 0.63, 1e-12);
}

// With a time budget, group 2 (B and C), rejected in the first pass, is tried again once every
// group has had its try: at a quarter of the step for twice the epochs, and then accepted.
TEST_F(Policy, TheSecondPassTakesARejectedGroupAgain) {
  auto script = [](const FakeExecutor::TrainCall& c) {
    auto s = atTarget(c);
    const bool second = c.options.label.find("second try") != std::string::npos;
    if (newGroups(c, {}).count(2) && !second) s[2] = 0.60;  // C misses group 2
    return s;
  };
  FakeExecutor without(catalog(), kUnmerged);
  without.on_train = script;
  const auto r0 = run(without);
  ASSERT_EQ(r0.trials.size(), 3u);
  EXPECT_EQ(r0.trials.back().decision, "rejected");

  options_.time_budget = 3600;
  FakeExecutor fake(catalog(), kUnmerged);
  fake.on_train = script;
  const auto r = run(fake);
  ASSERT_EQ(r.trials.size(), 4u);
  EXPECT_EQ(trial(r, 4).label, "group 2, second try (1 layer x 2 models)");
  EXPECT_EQ(trial(r, 4).decision, "accepted");
  const auto& second = fake.trains.back();
  EXPECT_DOUBLE_EQ(second.options.lr, workload_.search.lr * 0.25);
  EXPECT_DOUBLE_EQ(second.options.epochs, fake.trains.front().options.epochs * 2);
  EXPECT_EQ(r.achieved_savings, catalog().savingsBytes());
}

// The budget is spent during trial 1: its time was capped by the budget, and no trial follows.
TEST_F(Policy, TheTimeBudgetEndsTheSearch) {
  FakeExecutor fake(catalog(), kUnmerged);
  fake.on_train = [](const FakeExecutor::TrainCall& c) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return atTarget(c);
  };
  options_.time_budget = 0.2;
  const auto r = run(fake);
  ASSERT_EQ(r.trials.size(), 1u);
  EXPECT_EQ(r.status, "done");
  EXPECT_LE(fake.trains[0].options.seconds, 1.0);  // capped (at least a second per trial)
  EXPECT_GT(fake.trains[0].options.seconds, 0.0);
}

}  // namespace
}  // namespace gemel::merge
