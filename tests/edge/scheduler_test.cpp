// The edge scheduler against schedules worked out by hand (times in binary fractions, so that
// every comparison is exact).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "gemel/core/error.h"
#include "gemel/edge/scheduler.h"

namespace gemel::edge {
namespace {

ModelProfile model(const std::string& name, std::vector<Block> blocks, std::vector<int> sizes,
                   std::vector<double> latency, int64_t run_bytes = 0) {
  ModelProfile m;
  m.name = name;
  m.blocks = std::move(blocks);
  m.batch_sizes = std::move(sizes);
  m.latency_seconds = std::move(latency);
  m.run_bytes.assign(m.batch_sizes.size(), run_bytes);
  return m;
}

SimulationOptions options(int64_t memory, double fps, int64_t frames, double sla) {
  SimulationOptions o;
  o.memory_bytes = memory;
  o.fps = fps;
  o.frames = frames;
  o.sla_seconds = sla;
  return o;
}

TEST(EdgeScheduler, OneModelLoadsOnceThenKeepsUp) {
  // fps 8: frames at 0, .125, ..., .5. Load .25, then each frame takes .0625:
  // f0 ends .3125; f1 .375; f2 .4375; f3 .5; f4 .5625.
  auto o = options(100, 8, 5, 1);
  const auto r = simulate({model("a", {{"a", 100, 0.25}}, {1}, {0.0625})}, o);
  EXPECT_EQ(r.streams[0].processed, 5);
  EXPECT_EQ(r.streams[0].within_sla, 5);
  EXPECT_EQ(r.loads, 1);
  EXPECT_DOUBLE_EQ(r.load_seconds, 0.25);
  EXPECT_DOUBLE_EQ(r.end_seconds, 0.5625);
}

TEST(EdgeScheduler, ModelsThatDoNotFitTogetherSwapAndSharingAvoidsIt) {
  // Two models of 100 bytes in 150: each turn evicts the other (load .125 each).
  // 0: a loads (.125) runs (.1875); b evicts a, loads (.3125) runs (.375). Next frames at 1:
  // a loads (1.125) runs (1.1875); b loads (1.3125) runs (1.375).
  auto o = options(150, 1, 2, 10);
  const std::vector<ModelProfile> merged = {
      model("a", {{"shared", 80, 0.125 * 0.75}, {"a", 20, 0.125 * 0.25}}, {1}, {0.0625}),
      model("b", {{"shared", 80, 0.125 * 0.75}, {"b", 20, 0.125 * 0.25}}, {1}, {0.0625})};
  const auto apart = simulate(unmerged(merged), o);
  EXPECT_EQ(apart.loads, 4);
  EXPECT_DOUBLE_EQ(apart.load_seconds, 0.5);
  EXPECT_DOUBLE_EQ(apart.end_seconds, 1.375);
  EXPECT_EQ(apart.processed(), 4);
  // Merged, 120 bytes fit: a loads everything (.125), b only its private block (.03125);
  // 0: .125 + .0625 = .1875; b .21875 + .0625 = .28125; at 1: 1.0625, 1.125.
  const auto shared = simulate(merged, o);
  EXPECT_EQ(shared.loads, 2);
  EXPECT_DOUBLE_EQ(shared.load_seconds, 0.15625);
  EXPECT_DOUBLE_EQ(shared.end_seconds, 1.125);
  // No swap cost: loads are counted but free.
  o.load_costs = false;
  const auto free_loads = simulate(unmerged(merged), o);
  EXPECT_EQ(free_loads.loads, 4);
  EXPECT_DOUBLE_EQ(free_loads.load_seconds, 0);
  EXPECT_DOUBLE_EQ(free_loads.end_seconds, 1.125);
}

TEST(EdgeScheduler, EvictsTheModelWhoseTurnComesLast) {
  // Three models of 100 bytes in 200, one frame per second each, turns a, b, c, a, ...
  // Round 1: a and b load; c evicts b (a runs next). Round 2: a is resident; b evicts a (c runs
  // next); c is resident. Round 3: a evicts c; b is resident; c evicts b. Round 4: a resident,
  // b evicts a, c resident. Loads: 3 + 1 + 2 + 1 = 7 (least-recently-run would load 12).
  auto o = options(200, 1, 4, 10);
  std::vector<ModelProfile> models;
  for (const char* name : {"a", "b", "c"})
    models.push_back(model(name, {{name, 100, 0.0625}}, {1}, {0.0625}));
  const auto r = simulate(models, o);
  EXPECT_EQ(r.loads, 7);
  EXPECT_DOUBLE_EQ(r.load_seconds, 7 * 0.0625);
  EXPECT_EQ(r.processed(), 12);
  // Preloaded, a and b are resident before frame 0 (c would not fit with them): round 1 then
  // loads only c, and the rest is as above: 5 loads.
  o.preload = true;
  EXPECT_EQ(simulate(models, o).loads, 5);
}

TEST(EdgeScheduler, FramesOlderThanTheSlaAreSkipped) {
  // fps 8, 10 frames, each run .5, SLA .25. f0 runs to .5. At .5: f1 (.125) waited .375: skip;
  // f2 (.25) waited .25: kept, runs to 1. At 1: f3..f5 skipped, f6 (.75) runs to 1.5.
  // At 1.5: f7, f8, f9 (.875, 1, 1.125) skipped. No frame ends within .25 of its arrival.
  auto o = options(10, 8, 10, 0.25);
  const auto r = simulate({model("a", {{"a", 10, 0}}, {1}, {0.5})}, o);
  EXPECT_EQ(r.streams[0].processed, 3);
  EXPECT_EQ(r.streams[0].skipped, 7);
  EXPECT_EQ(r.streams[0].within_sla, 0);
  EXPECT_DOUBLE_EQ(r.end_seconds, 1.5);
}

TEST(EdgeScheduler, AutoBatchTakesWhatWaitsFixedBatchDoesNot) {
  // fps 4, 8 frames, every batch size takes .5. Auto: f0 (.5), f1-f2 (1), f3-f4 (1.5),
  // f5-f6 (2), f7 (2.5). Batch 1: one frame per .5 s, the last ends at 4.
  auto o = options(10, 4, 8, 100);
  const auto m = model("a", {{"a", 10, 0}}, {1, 2, 4}, {0.5, 0.5, 0.5});
  const auto automatic = simulate({m}, o);
  EXPECT_EQ(automatic.processed(), 8);
  EXPECT_DOUBLE_EQ(automatic.end_seconds, 2.5);
  o.batch = 1;
  const auto one = simulate({m}, o);
  EXPECT_EQ(one.processed(), 8);
  EXPECT_DOUBLE_EQ(one.end_seconds, 4.0);
}

TEST(EdgeScheduler, ABudgetBelowTheLargestModelIsOneClearError) {
  SimulationOptions o;
  o.memory_bytes = 99;
  try {
    simulate({model("small", {{"s", 10, 0}}, {1}, {0.1}),
              model("big_one", {{"b", 90, 0}}, {1}, {0.1}, 20)},
             o);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'big_one'"), std::string::npos) << m;
    EXPECT_NE(m.find("at least 110 bytes"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace gemel::edge

namespace gemel::edge {
namespace {

// Ten streams whose models share most of their weights: merged, they fit in far less memory,
// so they process at least as many frames at every budget, and about as many when everything
// fits either way. The sweep (20 budgets x 3 modes x 10 streams x 3000 frames) prints its time.
TEST(EdgeScheduler, MergedProcessesAtLeastAsManyFramesAcrossASweep) {
  std::vector<ModelProfile> merged;
  for (int i = 0; i < 10; ++i) {
    merged.push_back(model("cam" + std::to_string(i),
                           {{"shared", 400, 0.04}, {"own" + std::to_string(i), 100, 0.01}},
                           {1, 2, 4, 8}, {0.004, 0.006, 0.009, 0.015}, 50));
  }
  const auto apart = unmerged(merged);
  const auto start = std::chrono::steady_clock::now();
  int runs = 0;
  for (int k = 0; k < 20; ++k) {
    SimulationOptions o;
    o.memory_bytes = 550 + k * 250;  // 550 .. 5300: from one model to all ten unmerged
    o.frames = 3000;
    const auto m = simulate(merged, o);
    const auto u = simulate(apart, o);
    o.load_costs = false;
    const auto f = simulate(apart, o);
    runs += 3;
    EXPECT_GE(m.processed(), u.processed()) << o.memory_bytes;
    EXPECT_GE(f.processed(), u.processed()) << o.memory_bytes;
    if (o.memory_bytes >= 5050) {  // all ten unmerged models and a run fit
      EXPECT_NEAR(double(m.processed()), double(u.processed()), 0.01 * u.processed());
      EXPECT_EQ(u.loads, 10);
    }
    if (o.memory_bytes == 1550) {  // merged all fit (1050 + a run); unmerged swap
      EXPECT_GT(m.processed(), u.processed() + 1000);
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d simulations of 10 streams x 3000 frames in %.2f s\n", runs, seconds);
}

}  // namespace
}  // namespace gemel::edge
