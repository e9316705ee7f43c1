// The Planner driven by a scripted fake trainer: each test states which models meet their
// targets for which trials and checks the trials proposed, the decisions and the end.
#include <gtest/gtest.h>

#include <functional>

#include "gemel/core/error.h"
#include "gemel/merge/planner.h"
#include "gemel/merge/wire.h"
#include "layer_fixtures.h"

namespace gemel::merge {
namespace {

using models::LayerInfo;
using models::LayerKind;

LayerInfo conv(const std::string& module, int64_t out, int64_t in) {
  return testing::conv3x3(module, out, in);
}

// Three models. Signature 16x16 appears 4 times in each (group 0: 4 instances x 3 models);
// 8x8 twice in A and B (group 1: 2 instances x 2 models); 4x4 once in B and C (group 2).
LayerCatalog catalog() {
  std::vector<CatalogModel> models;
  for (const std::string name : {"A", "B", "C"}) {
    CatalogModel m;
    m.name = name;
    m.arch = "test";
    for (int i = 0; i < 4; ++i) m.layers.push_back(conv(name + ".big" + std::to_string(i), 16, 16));
    if (name != "C") {
      m.layers.push_back(conv(name + ".mid0", 8, 8));
      m.layers.push_back(conv(name + ".mid1", 8, 8));
    }
    if (name != "A") m.layers.push_back(conv(name + ".small", 4, 4));
    for (const auto& l : m.layers) m.total_bytes += l.bytes;
    models.push_back(m);
  }
  return LayerCatalog(models);
}

constexpr int64_t kBig = 16 * 16 * 9 * 4, kMid = 8 * 8 * 9 * 4, kSmall = 4 * 4 * 9 * 4;

// Runs the planner to the end; `met` decides each trial's outcome. Returns the trials seen.
std::vector<Trial> drive(Planner& p, const std::function<std::set<int>(const Trial&)>& met) {
  std::vector<Trial> seen;
  while (auto t = p.next()) {
    seen.push_back(*t);
    p.report(*t, met(*t));
    EXPECT_LT(seen.size(), 50u) << "the search does not end";
    if (seen.size() >= 50) break;
  }
  return seen;
}

TEST(Planner, GreedyTriesGroupsLargestFirstAndConfirmsWhenAllMeet) {
  const auto cat = catalog();
  ASSERT_EQ(cat.groups().size(), 3u);
  Planner p(cat, Strategy::kGreedy);
  const auto trials = drive(p, [](const Trial& t) {
    const auto m = t.models();
    return std::set<int>(m.begin(), m.end());
  });
  ASSERT_EQ(trials.size(), 3u);  // every group, the last one included
  EXPECT_EQ(trials[0].parts[0].group, 0);
  EXPECT_EQ(trials[0].bytes_saved, 4 * 2 * kBig);
  EXPECT_EQ(trials[1].parts[0].group, 1);
  EXPECT_EQ(trials[2].parts[0].group, 2);
  EXPECT_EQ(p.accepted().bytesSaved(cat), cat.savingsBytes());
  EXPECT_FALSE(p.next().has_value());  // and it stays ended
}

TEST(Planner, PartialConfirmKeepsTheModelsThatMetThenRetriesHalfForTheRest) {
  const auto cat = catalog();
  Planner p(cat, Strategy::kGreedy);
  std::vector<std::set<int>> script = {{0, 1}, {0, 1, 2}, {0, 1}, {1, 2}};
  std::size_t k = 0;
  const auto trials = drive(p, [&](const Trial&) { return script[k++]; });
  // 1: group 0, all 4 layers, C fails: confirmed for A and B; half (2 layers) retried with C.
  ASSERT_GE(trials.size(), 2u);
  EXPECT_EQ(trials[1].parts[0].group, 0);
  EXPECT_EQ(trials[1].parts[0].instances, (std::vector<int>{0, 1}));
  // Only C joining two layers is new: 2 x kBig.
  EXPECT_EQ(trials[1].bytes_saved, 2 * kBig);
  // 2: C met: instances 0,1 shared by all three, 2,3 by A and B.
  const auto& inst = p.accepted().instances();
  EXPECT_EQ(inst.at({0, 0}), (std::set<int>{0, 1, 2}));
  EXPECT_EQ(inst.at({0, 3}), (std::set<int>{0, 1}));
  ASSERT_EQ(trials.size(), 4u);
  EXPECT_EQ(trials[2].parts[0].group, 1);
  EXPECT_EQ(trials[3].parts[0].group, 2);
  EXPECT_EQ(p.accepted().bytesSaved(cat), 6 * kBig + 2 * kMid + kSmall);
}

TEST(Planner, HalvesOnFailureUntilOneLayerThenMovesOn) {
  const auto cat = catalog();
  Planner p(cat, Strategy::kGreedy);
  // Group 0 always fails for everyone: 4 layers, then 2, then 1, then on to group 1.
  const auto trials = drive(p, [](const Trial& t) {
    if (t.parts[0].group == 0) return std::set<int>{};
    const auto m = t.models();
    return std::set<int>(m.begin(), m.end());
  });
  ASSERT_EQ(trials.size(), 5u);
  EXPECT_EQ(trials[0].parts[0].instances.size(), 4u);
  EXPECT_EQ(trials[1].parts[0].instances, (std::vector<int>{0, 1}));
  EXPECT_EQ(trials[2].parts[0].instances, (std::vector<int>{0}));
  EXPECT_EQ(trials[3].parts[0].group, 1);
  EXPECT_EQ(trials[4].parts[0].group, 2);
  EXPECT_TRUE(p.accepted().instances().count({1, 0}));
  EXPECT_FALSE(p.accepted().instances().count({0, 0}));
}

TEST(Planner, MovesOnWhenTheHalfWouldSaveLessThanTheNextGroup) {
  const auto cat = catalog();
  Planner p(cat, Strategy::kGreedy);
  // Group 1 (2 mid layers, A and B) fails: its half saves kMid, less than group 2's kSmall? No:
  // kMid > kSmall, so the half is retried. Group 2 has one instance: no half at all.
  std::vector<Trial> trials = drive(p, [](const Trial& t) {
    if (t.parts[0].group == 0) {
      const auto m = t.models();
      return std::set<int>(m.begin(), m.end());
    }
    return std::set<int>{};
  });
  ASSERT_EQ(trials.size(), 4u);
  EXPECT_EQ(trials[2].parts[0].group, 1);  // the half of group 1
  EXPECT_EQ(trials[2].parts[0].instances.size(), 1u);
  EXPECT_EQ(trials[3].parts[0].group, 2);

  // Now a catalog where the half is worth less than the next group: two 8x8 layers in A/B
  // (half = kMid) followed by a 10x10 group of one instance (worth more than kMid).
  std::vector<CatalogModel> models;
  for (const std::string name : {"A", "B"}) {
    CatalogModel m;
    m.name = name;
    m.layers = {conv(name + ".m0", 8, 8), conv(name + ".m1", 8, 8), conv(name + ".x", 10, 10)};
    models.push_back(m);
  }
  const LayerCatalog cat2(models);
  ASSERT_EQ(cat2.groups()[0].instances.size(), 2u);  // 2 x kMid > 10x10's one layer
  Planner p2(cat2, Strategy::kGreedy);
  const auto t2 = drive(p2, [](const Trial&) { return std::set<int>{}; });
  ASSERT_EQ(t2.size(), 2u);  // group 0, then straight to group 1: its half (kMid) < 10x10
  EXPECT_EQ(t2[1].parts[0].group, 1);
}

// With the second pass: C fails group 0 at 4, 2 and 1 layers. Its second try (C joining all 4
// layers, 4 x kBig) is worth more at half odds than group 1 (2 x kMid), so it goes first, and
// C now meets its target; groups 1 and 2 follow, and the search ends with nothing left.
TEST(Planner, ALargeSecondTryGoesAheadOfSmallerUntriedGroups) {
  const auto cat = catalog();
  Planner p(cat, Strategy::kGreedy);
  p.enableSecondPass();
  const auto trials = drive(p, [](const Trial& t) {
    const auto m = t.models();
    std::set<int> met(m.begin(), m.end());
    if (t.parts[0].group == 0 && t.pass == 1) met.erase(2);
    return met;
  });
  ASSERT_EQ(trials.size(), 6u);
  EXPECT_EQ(trials[1].parts[0].instances.size(), 2u);  // the halves come first
  EXPECT_EQ(trials[2].parts[0].instances.size(), 1u);
  EXPECT_EQ(trials[2].pass, 1);
  EXPECT_EQ(trials[3].parts[0].group, 0);
  EXPECT_EQ(trials[3].pass, 2);
  EXPECT_EQ(trials[3].label, "group 0, second try (4 layers x 3 models)");
  EXPECT_EQ(trials[3].bytes_saved, 4 * kBig);
  EXPECT_EQ(trials[4].parts[0].group, 1);
  EXPECT_EQ(trials[5].parts[0].group, 2);
  EXPECT_EQ(p.accepted().bytesSaved(cat), cat.savingsBytes());

  // Group 1 fails for A at 2 layers and at 1. Its second try (2 x kMid, at half odds kMid)
  // still beats group 2 (kSmall), so it and its half come before group 2; group 2 fails, and
  // its second try comes last. Each group gets one second try only.
  Planner q(cat, Strategy::kGreedy);
  q.enableSecondPass();
  const auto t2 = drive(q, [](const Trial& t) {
    const auto m = t.models();
    std::set<int> met(m.begin(), m.end());
    if (t.parts[0].group == 1) met.erase(0);
    if (t.parts[0].group == 2) met.clear();
    return met;
  });
  std::vector<std::pair<int, int>> order;  // (group, pass)
  for (const auto& t : t2) order.emplace_back(t.parts[0].group, t.pass);
  EXPECT_EQ(order, (std::vector<std::pair<int, int>>{
                       {0, 1}, {1, 1}, {1, 1}, {1, 2}, {1, 2}, {2, 1}, {2, 2}}));
}

TEST(Planner, AllSharesEverythingInOneTrialAndManualFollowsTheList) {
  const auto cat = catalog();
  Planner all(cat, Strategy::kAll);
  const auto t = all.next();
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->parts.size(), 3u);
  EXPECT_EQ(t->bytes_saved, cat.savingsBytes());
  all.report(*t, {0, 1});  // C fails: groups 0 and 1 are kept for A and B; group 2 has no pair
  EXPECT_FALSE(all.next().has_value());
  EXPECT_EQ(all.accepted().bytesSaved(cat), 4 * kBig + 2 * kMid);

  Planner manual(cat, Strategy::kManual, {2, 0});
  const auto trials = drive(manual, [](const Trial&) { return std::set<int>{}; });
  ASSERT_EQ(trials.size(), 2u);  // no halving in manual mode
  EXPECT_EQ(trials[0].parts[0].group, 2);
  EXPECT_EQ(trials[1].parts[0].group, 0);
  EXPECT_THROW(Planner(cat, Strategy::kManual, {7}), ConfigError);
  EXPECT_THROW(parseStrategy("random"), ConfigError);
}

// Models 0-1 share through group 0, 1-2 through group 2 (so 0, 1, 2 are one component), 3-4
// through group 1; model 5 shares nothing.
TEST(SharingPlan, ConnectedFollowsSharedLayersTransitivelyAndOnlyKeepsThoseInstances) {
  SharingPlan plan;
  plan.add({0, {0}, {0, 1}});
  plan.add({2, {1}, {1, 2}});
  plan.add({1, {0, 3}, {3, 4}});
  EXPECT_EQ(plan.connected({0}), (std::set<int>{0, 1, 2}));
  EXPECT_EQ(plan.connected({2}), (std::set<int>{0, 1, 2}));
  EXPECT_EQ(plan.connected({4}), (std::set<int>{3, 4}));
  EXPECT_EQ(plan.connected({5}), (std::set<int>{5}));
  EXPECT_EQ(plan.connected({0, 3}), (std::set<int>{0, 1, 2, 3, 4}));
  const auto part = plan.only({0, 1, 2});
  EXPECT_EQ(part.instances().size(), 2u);
  EXPECT_EQ(part.models(), (std::set<int>{0, 1, 2}));
  EXPECT_TRUE(plan.only({0, 3}).empty());  // no instance lies wholly inside
  EXPECT_EQ(plan.only({0, 1, 2, 3, 4}), plan);
}

TEST(SharingPlan, TextAndJsonFormsAgree) {
  TrialPart a{0, {0, 2}, {0, 1, 2}};
  TrialPart b{2, {0}, {1, 2}};
  SharingPlan plan;
  plan.add(a);
  plan.add(b);
  EXPECT_EQ(plan.json(), "[[0,0,[0,1,2]],[0,2,[0,1,2]],[2,0,[1,2]]]");
  EXPECT_EQ(merge::wire::unpackPlan(merge::wire::pack(plan)), plan);
  EXPECT_EQ(SharingPlan().json(), "[]");
  EXPECT_TRUE(merge::wire::unpackPlan("").empty());
  EXPECT_EQ(SharingPlan::fromJson(plan.json(), "r.h5"), plan);
  EXPECT_TRUE(SharingPlan::fromJson("[]", "r.h5").empty());
  for (const std::string bad :
       {"[[0,0,[1]]]", "[[0,[1,2]]]", "[[0,0,[1,2]]", "{\"a\": 1}", "[[0,0,[[1,2]]]]"}) {
    try {
      SharingPlan::fromJson(bad, "r.h5");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("r.h5: the sharing plan is not"), std::string::npos)
          << e.what();
    }
  }
  const auto trial =
      merge::wire::unpackTrial(merge::wire::pack(Trial{7, {a, b}, 123, "group 0, half"}));
  EXPECT_EQ(trial.number, 7);
  EXPECT_EQ(trial.label, "group 0, half");
  EXPECT_EQ(trial.bytes_saved, 123);
  ASSERT_EQ(trial.parts.size(), 2u);
  EXPECT_EQ(trial.parts[1].models, (std::vector<int>{1, 2}));
}

}  // namespace
}  // namespace gemel::merge
