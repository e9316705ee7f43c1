// Parallel trials (MergeOptions::parallel_trials): the merge policy on 2 and 3 ranks, each rank
// a thread with its own scripted executor, the ranks agreeing through a ThreadWorld. Each test
// scripts the trials' scores and checks which trials commit alone, which are validated
// together with the wave's earlier commits, which run again, and that the outcome does not
// depend on which rank finishes first, nor on a kill in the middle of a wave.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include "fake_executor.h"
#include "gemel/dist/world.h"
#include "gemel/merge/coordinator.h"
#include "layer_fixtures.h"
#include "test_support.h"
#include "thread_ranks.h"

namespace gemel::merge {
namespace {

using testing::FakeExecutor;
using From = TrialExecutor::From;

CatalogModel model(const std::string& name, const std::vector<models::LayerInfo>& layers) {
  CatalogModel m;
  m.name = name;
  m.arch = "test";
  m.layers = layers;
  for (const auto& l : layers) m.total_bytes += l.bytes;
  return m;
}

// A, B, C: group 0, four 16x16 convs in all three; group 1, two 8x8 convs in all three;
// group 2, one 4x4 conv in B and C; with `tiny`, group 3, one 2x2 conv in all three. Every
// trial touches a task of every other.
LayerCatalog overlapping(bool tiny = false) {
  std::vector<CatalogModel> models;
  for (const std::string name : {"A", "B", "C"}) {
    std::vector<models::LayerInfo> layers;
    for (int i = 0; i < 4; ++i)
      layers.push_back(testing::conv3x3("big" + std::to_string(i), 16, 16));
    for (int i = 0; i < 2; ++i) layers.push_back(testing::conv3x3("mid" + std::to_string(i), 8, 8));
    if (name != "A") layers.push_back(testing::conv3x3("small", 4, 4));
    if (tiny) layers.push_back(testing::conv3x3("tiny", 2, 2));
    models.push_back(model(name, layers));
  }
  return LayerCatalog(models);
}

// A, B share a 16x16 conv; C, D an 8x8 one; all four a 4x4 one. The first two groups' trials
// touch disjoint tasks.
LayerCatalog disjoint() {
  std::vector<CatalogModel> models;
  for (const std::string name : {"A", "B", "C", "D"}) {
    std::vector<models::LayerInfo> layers;
    if (name == "A" || name == "B") layers.push_back(testing::conv3x3("x", 16, 16));
    if (name == "C" || name == "D") layers.push_back(testing::conv3x3("y", 8, 8));
    layers.push_back(testing::conv3x3("z", 4, 4));
    models.push_back(model(name, layers));
  }
  return LayerCatalog(models);
}

// Two families that share nothing with each other: A and B share a 16x16 conv and a 2x2 one,
// C and D an 8x8 conv.
LayerCatalog families() {
  std::vector<CatalogModel> models;
  for (const std::string name : {"A", "B", "C", "D"}) {
    std::vector<models::LayerInfo> layers;
    if (name == "A" || name == "B") {
      layers.push_back(testing::conv3x3("x", 16, 16));
      layers.push_back(testing::conv3x3("w", 2, 2));
    } else {
      layers.push_back(testing::conv3x3("y", 8, 8));
    }
    models.push_back(model(name, layers));
  }
  return LayerCatalog(models);
}

struct Rank {
  std::unique_ptr<FakeExecutor> fake;
  io::Results results;
};

class Parallel : public ::testing::Test {
 protected:
  void use(const LayerCatalog& catalog, const std::vector<double>& unmerged) {
    catalog_ = std::make_unique<LayerCatalog>(catalog);
    unmerged_ = unmerged;
    const auto path = dir_.file("w.yaml");
    testing::writeText(path, "name: fake\n");
    workload_ = {};
    workload_.name = "fake";
    workload_.source_file = path;
    for (const auto& m : catalog.models()) {
      config::TaskConfig t;
      t.name = m.name;
      t.arch = "test";
      t.num_classes = 2;
      workload_.tasks.push_back(t);
    }
    workload_.search.recovery_fraction = 0;  // the tests that want a recovery set it
    options_.out_dir = dir_.path();
    options_.print_table = false;
    options_.parallel_trials = true;
    options_.trial_ranks = 1;  // one rank per trial: the others guess (a test sets more)
  }

  // The search on `ranks` thread ranks; `script` sets up each rank's executor.
  std::vector<Rank> run(int ranks, const std::function<void(FakeExecutor&, int)>& script,
                        const std::optional<io::Results>& previous = std::nullopt) {
    testing::ThreadRanks threads(ranks);
    std::vector<Rank> out(static_cast<std::size_t>(ranks));
    for (int r = 0; r < ranks; ++r) {
      out[r].fake = std::make_unique<FakeExecutor>(*catalog_, unmerged_);
      script(*out[r].fake, r);
    }
    threads.run([&](int r) {
      testing::ThreadWorld world(threads, r);
      MergeCoordinator coordinator(workload_, workload_.source_file, options_, *out[r].fake, world);
      out[r].results = coordinator.run(previous);
    });
    return out;
  }

  double target(int t) const { return unmerged_[static_cast<std::size_t>(t)] * 0.95; }
  // Every task of the call's plan `over` above its target.
  std::map<int, double> atTarget(const FakeExecutor::TrainCall& c, double over) const {
    std::map<int, double> out;
    for (const int t : c.plan.models()) out[t] = target(t) + over;
    return out;
  }
  static bool combined(const std::string& label) {
    return label.find("with the wave's earlier trials") != std::string::npos;
  }
  // Validations of a combination see every task `over` above its target.
  FakeExecutor::ValidateScript combinationsAt(double over) const {
    return [this, over](const FakeExecutor::Event& e) {
      std::map<int, double> out;
      if (combined(e.label)) {
        for (const int t : e.tasks) out[t] = target(t) + over;
      }
      return out;
    };
  }
  // The same search: trials, plan and final scores.
  static void expectSameSearch(const io::Results& a, const io::Results& b) {
    ASSERT_EQ(a.trials.size(), b.trials.size());
    for (std::size_t i = 0; i < a.trials.size(); ++i) {
      EXPECT_EQ(a.trials[i].number, static_cast<int>(i) + 1);
      EXPECT_EQ(a.trials[i].label, b.trials[i].label);
      EXPECT_EQ(a.trials[i].decision, b.trials[i].decision);
      EXPECT_EQ(a.trials[i].scores, b.trials[i].scores);
      EXPECT_EQ(a.trials[i].ranks, b.trials[i].ranks);
      EXPECT_EQ(a.trials[i].bytes_saved, b.trials[i].bytes_saved);
    }
    EXPECT_EQ(a.plan_json, b.plan_json);
    ASSERT_EQ(a.tasks.size(), b.tasks.size());
    for (std::size_t t = 0; t < a.tasks.size(); ++t)
      EXPECT_EQ(a.tasks[t].final_score, b.tasks[t].final_score);
  }
  static std::vector<std::string> labels(const FakeExecutor& fake) {
    std::vector<std::string> out;
    for (const auto& c : fake.trains) out.push_back(c.options.label);
    return out;
  }
  static int count(const FakeExecutor& fake, const std::string& what, const std::string& label) {
    int n = 0;
    for (const auto& e : fake.events) n += e.what == what && e.label == label;
    return n;
  }

  testing::TempDir dir_;
  config::Workload workload_;
  MergeOptions options_;
  std::unique_ptr<LayerCatalog> catalog_;
  std::vector<double> unmerged_;
};

// Trials 1 (A, B) and 2 (C, D) run at once on ranks 0 and 1; neither touches the other's
// tasks, so trial 2 commits as it was decided: no combined validation, no second run.
TEST_F(Parallel, TrialsOnDisjointTasksCommitAlone) {
  use(disjoint(), {0.8, 0.9, 0.7, 0.6});
  const auto ranks = run(2, [&](FakeExecutor& fake, int) {
    fake.on_train = [&](const FakeExecutor::TrainCall& c) { return atTarget(c, 0.01); };
  });
  const auto& r = ranks[0].results;
  ASSERT_EQ(r.trials.size(), 3u);
  for (const auto& t : r.trials) EXPECT_EQ(t.decision, "accepted") << t.label;
  EXPECT_EQ(r.trials[0].models, (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(r.trials[1].models, (std::vector<std::string>{"C", "D"}));
  EXPECT_EQ(r.trials[0].ranks, (std::vector<int64_t>{0}));
  EXPECT_EQ(r.trials[1].ranks, (std::vector<int64_t>{1}));
  EXPECT_EQ(r.achieved_savings, catalog_->savingsBytes());
  // Rank 1 trained trial 2 once, from the state before trial 1 (the unmerged scores).
  const auto& rank1 = *ranks[1].fake;
  ASSERT_FALSE(rank1.trains.empty());
  EXPECT_EQ(rank1.trains[0].options.label.rfind("trial 2 (", 0), 0u);
  EXPECT_EQ(rank1.trains[0].scores, unmerged_);
  for (const auto& rank : ranks) {
    EXPECT_EQ(rank.fake->count("graft"), 0);
    for (const auto& label : labels(*rank.fake)) EXPECT_FALSE(combined(label)) << label;
    // Every rank took trial 2's result for C and D from rank 1.
    EXPECT_NE(std::find(rank.fake->adopted.begin(), rank.fake->adopted.end(),
                        std::make_pair(1, std::set<int>{2, 3})),
              rank.fake->adopted.end());
    EXPECT_EQ(rank.fake->committedScores(), ranks[0].fake->committedScores());
  }
  for (int t = 0; t < 4; ++t) EXPECT_DOUBLE_EQ(r.tasks[t].final_score, target(t) + 0.01);
  // The ranks' time: each was busy in its own trial.
  ASSERT_EQ(r.rank_busy_seconds.size(), 2u);
}

// On 3 ranks with trial_ranks 0: trial 1 trains A and B, so it takes ranks 0 and 1 (a group
// of two, its tasks placed over them); rank 2 runs trial 2 (C, D), the trial after it were it
// accepted.
TEST_F(Parallel, TheNextTrialTakesARankPerTaskItTrainsAndTheRanksLeftGuess) {
  use(disjoint(), {0.8, 0.9, 0.7, 0.6});
  options_.trial_ranks = 0;
  const auto ranks = run(3, [&](FakeExecutor& fake, int) {
    fake.on_train = [&](const FakeExecutor::TrainCall& c) { return atTarget(c, 0.01); };
  });
  const auto& r = ranks[0].results;
  ASSERT_EQ(r.trials.size(), 3u);
  EXPECT_EQ(r.trials[0].ranks, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(r.trials[1].ranks, (std::vector<int64_t>{2}));
  for (int k = 0; k < 2; ++k) {
    ASSERT_FALSE(ranks[k].fake->bound.empty());
    EXPECT_EQ(ranks[k].fake->bound[0], std::make_pair(2, std::set<int>{0, 1})) << "rank " << k;
  }
  ASSERT_FALSE(ranks[2].fake->bound.empty());
  EXPECT_EQ(ranks[2].fake->bound[0], std::make_pair(1, std::set<int>{2, 3}));
  // Trial 3 (all four tasks) takes all three ranks: nothing is left to guess with.
  EXPECT_EQ(r.trials[2].ranks, (std::vector<int64_t>{0, 1, 2}));
  for (const auto& t : r.trials) EXPECT_EQ(t.decision, "accepted") << t.label;
  EXPECT_EQ(r.achieved_savings, catalog_->savingsBytes());
}

// Trial 3 shares W between A and B. C and D share Y since trial 2, but nothing with A or B:
// training A and B cannot move them, so trial 3 trains A and B alone (the sequential search
// retrains every model that shares a layer), and commits beside a guess on C and D.
TEST_F(Parallel, ATrialTrainsOnlyTheTasksItsLayersConnect) {
  use(families(), {0.8, 0.9, 0.7, 0.6});
  options_.trial_ranks = 0;
  const auto ranks = run(2, [&](FakeExecutor& fake, int) {
    fake.on_train = [&](const FakeExecutor::TrainCall& c) { return atTarget(c, 0.01); };
  });
  const auto& r = ranks[0].results;
  ASSERT_EQ(r.trials.size(), 3u);
  for (const auto& t : r.trials) EXPECT_EQ(t.decision, "accepted") << t.label;
  EXPECT_EQ(r.trials[2].models, (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(r.trials[2].trained, (std::vector<std::string>{"A", "B"}));
  for (const auto& rank : ranks) {
    for (const auto& c : rank.fake->trains) {
      if (c.options.label.rfind("trial 3 (", 0) == 0)
        EXPECT_EQ(c.plan.models(), (std::set<int>{0, 1})) << c.options.label;
    }
  }
  EXPECT_EQ(r.achieved_savings, catalog_->savingsBytes());
}

// Trial 2 (group 1) ran on rank 1 beside trial 1 (group 0), which then committed new weights
// for A, B and C: trial 2 trained from a stale state. On rank 1 its result is combined with the
// committed state and validated there, and it commits with the scores of that validation.
TEST_F(Parallel, OverlappingTrialsCommitOnlyAfterTheirCombinationIsValidated) {
  use(overlapping(), {0.8, 0.9, 0.7});
  const auto ranks = run(2, [&](FakeExecutor& fake, int) {
    fake.on_train = [&](const FakeExecutor::TrainCall& c) { return atTarget(c, 0.01); };
    fake.on_validate = combinationsAt(0.005);
  });
  const auto& r = ranks[0].results;
  ASSERT_GE(r.trials.size(), 2u);
  EXPECT_EQ(r.trials[0].decision, "accepted");
  EXPECT_EQ(r.trials[1].decision, "accepted");
  EXPECT_EQ(r.trials[1].ranks, (std::vector<int64_t>{1}));
  const auto& rank1 = *ranks[1].fake;
  // graft (every task was changed by trial 1: none taken whole from the result), the combined
  // plan tied from the staged state, then validated.
  std::size_t k = 0;
  while (k < rank1.events.size() && rank1.events[k].what != "graft") ++k;
  ASSERT_LT(k + 2, rank1.events.size());
  EXPECT_EQ(rank1.events[k].tasks, std::set<int>{});
  EXPECT_EQ(rank1.events[k + 1].what, "apply");
  EXPECT_EQ(rank1.events[k + 1].from, From::kStaged);
  std::set<int> groups;
  for (const auto& [key, members] : rank1.events[k + 1].plan.instances()) groups.insert(key.first);
  EXPECT_EQ(groups, (std::set<int>{0, 1}));
  EXPECT_EQ(rank1.events[k + 2].what, "validate");
  EXPECT_TRUE(combined(rank1.events[k + 2].label));
  EXPECT_EQ(ranks[0].fake->count("graft"), 0);
  // Not run again: trial 2 trained once.
  int runs = 0;
  for (const auto& rank : ranks) {
    for (const auto& label : labels(*rank.fake)) runs += label.rfind("trial 2 (", 0) == 0;
  }
  EXPECT_EQ(runs, 1);
  // What the search recorded after trial 2 is the combination's validation.
  const auto& after = ranks[0].fake->records.at(1);
  ASSERT_EQ(after.trials.size(), 2u);
  for (int t = 0; t < 3; ++t) EXPECT_DOUBLE_EQ(after.tasks[t].final_score, target(t) + 0.005);
  for (const auto& rank : ranks) {
    EXPECT_NE(std::find(rank.fake->adopted.begin(), rank.fake->adopted.end(),
                        std::make_pair(1, std::set<int>{0, 1, 2})),
              rank.fake->adopted.end());
  }
}

// As above, but the combination misses (and so does its short recovery): trial 2 runs again,
// first in the next wave, on rank 0, from the committed state, and the search decides every
// trial as the sequential search does.
TEST_F(Parallel, AStaleTrialWhoseCombinationMissesRunsAgainFromTheCommittedState) {
  use(overlapping(), {0.8, 0.9, 0.7});
  workload_.search.recovery_fraction = 0.25;
  options_.max_steps_per_trial = 40;
  auto script = [&](FakeExecutor& fake, int) {
    fake.on_train = [&](const FakeExecutor::TrainCall& c) {
      if (combined(c.options.label)) return atTarget(c, -0.01);  // the recovery misses
      return atTarget(c, 0.01);
    };
    fake.on_validate = [&](const FakeExecutor::Event& e) {
      std::map<int, double> out;
      if (combined(e.label)) out[0] = target(0) - 0.02;  // A misses in the combination
      return out;
    };
  };
  const auto ranks = run(2, script);
  const auto& r = ranks[0].results;
  const auto& rank0 = *ranks[0].fake;
  // Rank 0: trial 1, then trial 2 again, from trial 1's committed scores.
  ASSERT_GE(rank0.trains.size(), 2u);
  EXPECT_EQ(rank0.trains[0].options.label.rfind("trial 1 (", 0), 0u);
  EXPECT_EQ(rank0.trains[1].options.label.rfind("trial 2 (", 0), 0u);
  for (int t = 0; t < 3; ++t) EXPECT_DOUBLE_EQ(rank0.trains[1].scores[t], target(t) + 0.01);
  // Its combination was validated on rank 1 (the first there), and a recovery tried: one per
  // combination.
  EXPECT_GE(ranks[1].fake->count("graft"), 1);
  EXPECT_EQ(count(*ranks[1].fake, "validate", "trial 2: with the wave's earlier trials"), 2);
  int recoveries = 0;
  for (const auto& label : labels(*ranks[1].fake)) recoveries += combined(label);
  EXPECT_EQ(recoveries, ranks[1].fake->count("graft"));
  // Every trial decided as the sequential search decides it.
  dist::SingleWorld one;
  FakeExecutor sequential(*catalog_, unmerged_);
  script(sequential, 0);
  options_.parallel_trials = false;
  MergeCoordinator coordinator(workload_, workload_.source_file, options_, sequential, one);
  const auto s = coordinator.run();
  ASSERT_EQ(r.trials.size(), s.trials.size());
  for (std::size_t i = 0; i < s.trials.size(); ++i) {
    EXPECT_EQ(r.trials[i].label, s.trials[i].label);
    EXPECT_EQ(r.trials[i].decision, s.trials[i].decision);
  }
  EXPECT_EQ(r.plan_json, s.plan_json);
}

// The ranks finish their trials in a scripted order (sleeps), one way and then the other: the
// search commits in plan order, so the records are the same.
TEST_F(Parallel, DecisionsDoNotDependOnWhichRankFinishesFirst) {
  use(overlapping(), {0.8, 0.9, 0.7});
  auto search = [&](bool rank0_last) {
    return run(3, [&, rank0_last](FakeExecutor& fake, int rank) {
      const int delay = rank0_last ? 40 * (2 - rank) : 40 * rank;
      fake.on_train = [&, delay](const FakeExecutor::TrainCall& c) {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay));
        auto s = atTarget(c, 0.01);
        if (c.candidates.count(2) && c.options.label.find("group 1") != std::string::npos)
          s[2] = target(2) - 0.05;  // C cannot take group 1: a partial trial
        return s;
      };
      fake.on_validate = combinationsAt(0.003);
    });
  };
  const auto a = search(false), b = search(true);
  ASSERT_GE(a[0].results.trials.size(), 3u);
  expectSameSearch(a[0].results, b[0].results);
  ASSERT_EQ(a[0].fake->records.size(), b[0].fake->records.size());
  for (std::size_t k = 0; k < a[0].fake->records.size(); ++k)
    EXPECT_EQ(a[0].fake->records[k].plan_json, b[0].fake->records[k].plan_json);
}

// A kill during the second wave: the run resumed from what was recorded after the first wave
// plans the same second wave (its trials were in flight) and ends as the uninterrupted run.
TEST_F(Parallel, ResumeWithTrialsInFlightEndsAsAnUninterruptedRun) {
  use(overlapping(true), {0.8, 0.9, 0.7});
  auto script = [&](FakeExecutor& fake, int) {
    fake.on_train = [&](const FakeExecutor::TrainCall& c) {
      auto s = atTarget(c, 0.01);
      if (c.options.label.find("group 2") != std::string::npos) s[1] = target(1) - 0.1;
      return s;
    };
    fake.on_validate = combinationsAt(0.004);
  };
  const auto whole = run(2, script);
  const auto& records = whole[0].fake->records;
  // records: the start, one per wave, the end.
  ASSERT_GE(records.size(), 4u);
  const io::Results after_first_wave = records[1];
  ASSERT_GE(after_first_wave.trials.size(), 1u);
  const auto resumed = run(2, script, after_first_wave);
  expectSameSearch(whole[0].results, resumed[0].results);
  // The resumed ranks began with the second wave's trials, as the uninterrupted ranks ran them.
  for (int r = 0; r < 2; ++r) {
    const auto& before = whole[r].fake->trains;
    const auto& after = resumed[r].fake->trains;
    const std::size_t done = [&] {
      std::size_t n = 0;
      for (const auto& c : before) {
        const int number = std::stoi(c.options.label.substr(6));
        n += number <= static_cast<int>(after_first_wave.trials.size()) &&
             c.options.label.rfind("trial", 0) == 0 && !combined(c.options.label);
      }
      return n;
    }();
    ASSERT_LT(done, before.size());
    ASSERT_FALSE(after.empty());
    EXPECT_EQ(after[0].options.label, before[done].options.label) << "rank " << r;
    EXPECT_EQ(after[0].scores, before[done].scores) << "rank " << r;
  }
}

}  // namespace
}  // namespace gemel::merge
