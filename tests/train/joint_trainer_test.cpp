// JointTrainer without mpirun: one task replicated on two ranks that are threads of this
// process, each training on its half of every batch. Gradients are summed over the replicas
// (GradSync over the thread communicator) and BatchNorm statistics averaged before each
// validation, so the replicas must end bit-identical, having taken the same steps and reported
// the same scores. Without the reduction they would train on different data and drift apart.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <thread>

#include "gemel/data/sources.h"
#include "gemel/dist/grad_sync.h"
#include "gemel/train/joint_trainer.h"
#include "gemel/train/task.h"
#include "test_support.h"
#include "thread_ranks.h"
#include "tied_pair.h"

namespace gemel::train {
namespace {

using gemel::testing::ThreadRanks;

using gemel::testing::writeTops;

// Passes every call on, and keeps this rank's gradients of the first step before and after
// their reduction.
class RecordingSync final : public ForwardingSync {
 public:
  explicit RecordingSync(RankSync& inner) : ForwardingSync(inner) {}
  void reduceGradients(const std::vector<torch::Tensor>& params) override {
    const bool first = before.empty();
    if (first) {
      for (const auto& p : params) before.push_back(p.grad().detach().clone());
    }
    ForwardingSync::reduceGradients(params);
    if (first) {
      for (const auto& p : params) after.push_back(p.grad().detach().clone());
    }
  }
  std::vector<torch::Tensor> before, after;
};

TEST(JointTrainerThreads, ReplicasOnTwoRanksStayIdentical) {
  gemel::testing::TempDir dir;
  writeTops(dir, 64);
  config::TaskConfig c;
  c.name = "tops_resnet18";
  c.arch = "resnet18";
  c.num_classes = 3;
  c.dataset = dir.file("tops.h5");
  c.batch_size = 32;
  c.image_size = 16;
  c.transforms.hflip = false;  // no randomness: the replicas differ only by their data

  // Built one after the other (model initialisation draws from the global generator).
  std::vector<std::unique_ptr<TaskRuntime>> replicas;
  for (int r = 0; r < 2; ++r) {
    replicas.push_back(std::make_unique<TaskRuntime>(c, 0, torch::kCPU, 0, Replica{r, 2}));
  }
  const auto before = replicas[0]->model().stateDict()[0].second.clone();
  ThreadRanks ranks(2);
  std::vector<TrialResult> results(2);
  std::vector<std::vector<torch::Tensor>> local(2), reduced(2);
  ranks.run([&](int rank) {
    auto& task = *replicas[rank];
    const gemel::testing::ThreadWorld world(ranks, rank);
    dist::CommunicatorCache cache(world, dist::Backend::kMpi, torch::kCPU);
    cache.adopt({0, 1}, ranks.communicator(rank));
    std::vector<dist::SyncEntry> grads, buffers;
    for (const auto& [name, p] : task.model().namedParameters()) grads.push_back({name, p, {0, 1}});
    for (const auto& [name, b] : task.model().namedBuffers()) {
      if (torch::isFloatingType(b.scalar_type())) buffers.push_back({name, b, {0, 1}});
    }
    WorldSync sync(world, std::make_unique<dist::GradSync>(cache, grads, int64_t(1) << 20, true),
                   std::make_unique<dist::GradSync>(cache, buffers));
    TrainOptions o;
    o.lr = 0.05;
    o.epochs = 1e9;
    o.max_steps = 6;
    o.early_stop = false;
    o.adaptive = false;
    o.label = "replica " + std::to_string(rank);
    RecordingSync recording(sync);
    JointTrainer trainer({{0, c.name, 2.0, &task, 0.5, nullptr, false}}, o, recording);
    results[rank] = trainer.run();
    local[rank] = recording.before;
    reduced[rank] = recording.after;
  });
  // The first step's reduced gradient is, on both ranks and in every element, the sum of the
  // two ranks' own gradients, which differ (each rank trains on its half of the batch).
  ASSERT_EQ(local[0].size(), local[1].size());
  ASSERT_FALSE(local[0].empty());
  int same_local = 0, wrong_sum = 0;
  for (std::size_t k = 0; k < local[0].size(); ++k) {
    same_local += torch::equal(local[0][k], local[1][k]);
    const auto expect = local[0][k] + local[1][k];
    for (int r = 0; r < 2; ++r) wrong_sum += !torch::equal(reduced[r][k], expect);
  }
  EXPECT_LT(same_local, static_cast<int>(local[0].size()) / 4)
      << "the ranks' own gradients should differ (different data)";
  EXPECT_EQ(wrong_sum, 0) << "reduced gradients that are not the sum of both ranks' own";
  EXPECT_EQ(results[0].steps, 6);
  EXPECT_EQ(results[1].steps, 6);
  EXPECT_EQ(results[0].scores, results[1].scores);
  const auto a = replicas[0]->model().stateDict();
  const auto b = replicas[1]->model().stateDict();
  ASSERT_EQ(a.size(), b.size());
  int differing = 0;
  std::string names;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (torch::equal(a[i].second, b[i].second)) continue;
    ++differing;
    names += " " + a[i].first + " (by " +
             std::to_string((a[i].second - b[i].second).abs().max().item<double>()) + ")";
  }
  EXPECT_EQ(differing, 0) << "of " << a.size() << " tensors:" << names;
  // And they did train: the weights moved from their start.
  EXPECT_FALSE(torch::equal(before, a[0].second));
}

}  // namespace
}  // namespace gemel::train

namespace gemel::train {
namespace {

// Three independent tiny tasks; targets decide the early-stop rules' outcome.
struct Trio {
  gemel::testing::TempDir dir;
  std::vector<std::unique_ptr<TaskRuntime>> tasks;
  Trio() {
    data::FashionMnistOptions fo;
    fo.classes = {5, 7, 9};
    fo.size = 16;
    fo.max_train = 160;
    fo.max_val = 48;
    data::convertFashionMnist(fo, dir.file("shoes.h5"));
    for (int t = 0; t < 3; ++t) {
      config::TaskConfig c;
      c.name = "shoes_" + std::to_string(t);
      c.arch = "resnet18";
      c.num_classes = 3;
      c.dataset = dir.file("shoes.h5");
      c.batch_size = 32;
      c.image_size = 16;
      tasks.push_back(std::make_unique<TaskRuntime>(c, t, torch::kCPU, 0));
    }
  }
  int64_t epochAndAHalf() const {
    const int64_t per_epoch = tasks[0]->batchesPerEpoch();
    return std::max<int64_t>(1, per_epoch / 2) + per_epoch;
  }
  // Tasks 0 and 1 reachable (target 0), task 2 not (target 2); `candidate2`: task 2 is one of
  // the trial's own models.
  TrialResult run(bool candidate2, TrainOptions o = defaults()) {
    std::vector<TrialTask> trial;
    for (int t = 0; t < 3; ++t) {
      trial.push_back({t, tasks[t]->name(), t == 2 ? 2.0 : 0.0, tasks[t].get(), 1.0, nullptr,
                       t < 2 || candidate2});
    }
    return JointTrainer(trial, o).run();
  }
  static TrainOptions defaults() {
    TrainOptions o;
    o.lr = 0.01;
    o.epochs = 20;
    o.drop_after_epochs = 0;
    o.min_candidates = 2;
    return o;
  }
};

TEST(EarlyStop, AHopelessCandidateIsDroppedAndTheOthersEndTheTrialAtOnce) {
  Trio trio;
  const auto r = trio.run(true);
  EXPECT_EQ(r.dropped, (std::vector<bool>{false, false, true}));
  EXPECT_EQ(r.met, (std::vector<bool>{true, true, false}));
  EXPECT_EQ(r.ended, "every remaining task meets its target");
  // Dropped on the second validation in training (never on the first), at most 1.5 epochs in:
  // far inside the 20-epoch budget.
  EXPECT_EQ(r.validations, 3);
  EXPECT_LE(r.steps, trio.epochAndAHalf());
}

// Without early stop, tasks 0 and 1 would train on to the 20-epoch budget; task 2, dropped below
// its collapse floor, ends the trial there (the search retries a collapsed trial anyway). A floor
// it is above, or a count of collapses it does not reach, leaves the trial to run on.
TEST(EarlyStop, ATaskDroppedBelowItsCollapseFloorEndsTheTrialAtOnce) {
  Trio trio;
  auto o = Trio::defaults();
  o.early_stop = false;
  o.collapse_floor = {-1.0, -1.0, 1.5};  // task 2's target is 2: every score is below 1.5
  o.end_after_collapses = 1;
  const auto r = trio.run(true, o);
  EXPECT_EQ(r.dropped, (std::vector<bool>{false, false, true}));
  EXPECT_EQ(r.ended.rfind("a task collapsed: shoes_2 at ", 0), 0u) << r.ended;
  EXPECT_NE(r.ended.find("(floor 1.5)"), std::string::npos) << r.ended;
  EXPECT_EQ(r.validations, 3);
  EXPECT_LE(r.steps, trio.epochAndAHalf());

  o.end_after_collapses = 2;  // one collapse of the two asked for
  o.max_steps = 3 * trio.epochAndAHalf();
  const auto more = trio.run(true, o);
  EXPECT_EQ(more.dropped, (std::vector<bool>{false, false, true}));
  EXPECT_EQ(more.steps, o.max_steps) << more.ended;
  o.end_after_collapses = 1;
  o.collapse_floor = {-1.0, -1.0, -1.0};  // dropped, but above its floor
  const auto above = trio.run(true, o);
  EXPECT_EQ(above.steps, o.max_steps) << above.ended;
}

// Slow steps and validations, as a Faster R-CNN at 224 px has on 2 cores (there a step and a
// validation take about 60 s): each step's gradient reduction sleeps `step`, each validation's
// sum sleeps `validation`.
class SlowSync final : public ForwardingSync {
 public:
  SlowSync(double step, double validation)
      : ForwardingSync(RankSync::local()), step_(step), validation_(validation) {}
  void reduceGradients(const std::vector<torch::Tensor>& params) override {
    std::this_thread::sleep_for(std::chrono::duration<double>(step_));
    ForwardingSync::reduceGradients(params);
  }
  void sum(std::vector<int64_t>& values) override {
    std::this_thread::sleep_for(std::chrono::duration<double>(validation_));
    ForwardingSync::sum(values);
  }

 private:
  double step_, validation_;
};

// A deadline (the search's time budget) ends a run that would train on for 20 epochs: no step
// starts unless it and the validation after it fit, so the run ends by the deadline plus at
// most one step and one validation. (A trainer that ignores the deadline runs its 100 steps
// and 22 validations: 39.8 s.)
TEST(EarlyStop, ADeadlineEndsTheRunWithinOneStepAndOneValidation) {
  Trio trio;
  auto o = Trio::defaults();
  o.early_stop = false;
  o.adaptive = false;
  const double step = 0.2, validation = 0.3, budget = 2.5;
  SlowSync slow(step, validation);
  const auto start = std::chrono::steady_clock::now();
  o.deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                           std::chrono::duration<double>(budget));
  std::vector<TrialTask> trial;
  for (int t = 0; t < 2; ++t) {
    trial.push_back({t, trio.tasks[t]->name(), 0.0, trio.tasks[t].get(), 1.0, nullptr, true});
  }
  const auto r = JointTrainer(trial, o, slow).run();
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.ended, "the time budget is spent");
  EXPECT_GE(r.steps, 1);  // it trained while there was time
  EXPECT_GE(r.validation_seconds, validation);
  EXPECT_GE(r.step_seconds, step);
  EXPECT_LE(took, budget + r.step_seconds + r.validation_seconds)
      << r.steps << " steps, " << r.validations << " validations";
  std::printf("deadline %.1f s: %ld steps, %d validations, ended after %.2f s\n", budget,
              static_cast<long>(r.steps), r.validations, took);
}

TEST(EarlyStop, ATrialEndsWhenATaskItCannotDoWithoutIsDropped) {
  Trio trio;
  const auto r = trio.run(false);
  EXPECT_EQ(r.dropped, (std::vector<bool>{false, false, true}));
  EXPECT_EQ(r.ended, "task shoes_2 cannot reach its target, and the trial needs it");
  EXPECT_EQ(r.validations, 3);
  EXPECT_LE(r.steps, trio.epochAndAHalf());
}

}  // namespace
}  // namespace gemel::train

namespace gemel::train {
namespace {

using gemel::testing::TiedPair;

// The whole joint step against the plain loop a user would write: per step, zeroed gradients,
// each task's loss on its next batch (same augmentation draws), the sum read back to the host,
// one backward, torch::optim::SGD over the unique parameters. The trainer keeps the loss on the
// device, reads it back on a cadence, zeroes gradients in place and steps with multi-tensor
// SGD; the weights must still agree within 1e-5 (fp32, two tied layers, 8 steps).
TEST(JointStep, MatchesAPlainLoopWithTorchOptimSgd) {
  gemel::testing::TempDir dir;
  writeTops(dir, 32);
  constexpr int kSteps = 8;
  const double lr = 0.02;

  TiedPair fast(dir.file("tops.h5"));
  const auto start = fast.state(0)[0].clone();
  TrainOptions o;
  o.lr = lr;
  o.epochs = 1e9;
  o.max_steps = kSteps;
  o.early_stop = false;
  o.adaptive = false;
  JointTrainer trainer({{0, "tops_0", 0.0, fast.tasks[0].get(), 1.0, nullptr, true},
                        {1, "tops_1", 0.0, fast.tasks[1].get(), 1.0, nullptr, true}},
                       o);
  ASSERT_EQ(trainer.run().steps, kSteps);

  TiedPair plain(dir.file("tops.h5"));
  auto params = uniqueParameters({&plain.tasks[0]->model(), &plain.tasks[1]->model()});
  torch::optim::SGD sgd(params, torch::optim::SGDOptions(lr).momentum(0.9).weight_decay(5e-4));
  for (int step = 0; step < kSteps; ++step) {
    sgd.zero_grad();
    torch::Tensor total;
    for (auto& t : plain.tasks) {
      auto loss = t->trainLoss(t->nextTrainBatch());
      total = total.defined() ? total + loss : loss;
    }
    ASSERT_TRUE(std::isfinite(total.item<double>()));
    total.backward();
    sgd.step();
  }

  const double worst = fast.largestDifference(plain);
  std::printf("joint step vs plain loop: largest difference %.3g over %d steps\n", worst, kSteps);
  EXPECT_LE(worst, 1e-5);
  // The tie held, and training moved the weights.
  EXPECT_TRUE(fast.tied());
  EXPECT_GT((fast.state(0)[0] - start).abs().max().item<double>(), 1e-4);
}

// The path of graphed steps (TrainOptions::capture), without the graph: after the eager
// warm-up steps, each task's input and labels are copied into static tensors and the loss
// weights are device scalars, and the step's forward and backward run on those. It must train
// as the eager step does (CPU, fp32: the same kernels on the same numbers).
TEST(JointStep, TheStaticInputStepOfCudaGraphsTrainsAsTheEagerStep) {
  gemel::testing::TempDir dir;
  writeTops(dir, 32);
  constexpr int kSteps = 9;
  TiedPair eager(dir.file("tops.h5")), statics(dir.file("tops.h5"));
  const auto start = eager.state(0)[0].clone();
  const auto e = gemel::testing::trainPair(eager, TrainOptions::Capture::kOff, kSteps);
  const auto s = gemel::testing::trainPair(statics, TrainOptions::Capture::kStaticInputs, kSteps);
  ASSERT_EQ(e.steps, kSteps);
  ASSERT_EQ(s.steps, kSteps);
  EXPECT_EQ(e.graphed_steps, 0);
  EXPECT_EQ(s.graphed_steps, kSteps - TrainOptions::kGraphWarmups);
  EXPECT_EQ(s.scores, e.scores);
  const double worst = statics.largestDifference(eager);
  std::printf("static-input step vs eager step: largest difference %.3g over %d steps\n", worst,
              kSteps);
  EXPECT_LE(worst, 1e-6);
  EXPECT_TRUE(statics.tied());
  EXPECT_GT((statics.state(0)[0] - start).abs().max().item<double>(), 1e-4);
}

}  // namespace
}  // namespace gemel::train
