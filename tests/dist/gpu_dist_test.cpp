// The merge on CUDA devices, as users run it (ctest label `gpu`): one rank on the GPU against
// the same merge on the CPU; two ranks sharing one GPU, gradients staged through host memory
// by the MPI backend; two ranks on two GPUs over NCCL. Same decisions; weights equal to float
// tolerance (cuDNN may use TF32, hence the looser bound against the CPU).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>

#include "cuda_devices.h"
#include "fashion_workload.h"
#include "gemel/core/format.h"
#include "gemel/io/results.h"
#include "test_support.h"

namespace gemel {
namespace {

using testing::run;
using testing::shellQuote;
using testing::TempDir;

std::string mpirun(int np) {
  return format(
      "timeout 300 mpirun -np {} --oversubscribe --allow-run-as-root --bind-to none "
      "--mca btl_vader_single_copy_mechanism none ",
      np);
}

// Three resnet18 tasks trained for one epoch, made once for the suite (on first use, so that a
// machine without a GPU skips before doing any work).
const TempDir& workload() {
  static TempDir* dir = [] {
    auto* d = new TempDir;
    testing::FashionWorkload w;
    w.header =
        "name: trio\n"
        "defaults: {batch_size: 32, accuracy_target: 0.1}\n"
        "search: {strategy: greedy, epochs_per_trial: 1, lr: 0.05, max_trials: 2}\n";
    w.tasks = {{"shoes_a_resnet18", {5, 7, 9}},
               {"bags_b_resnet18", {8, 1, 3}},
               {"tops_c_resnet18", {0, 2, 6}}};
    testing::writeFashionWorkload(*d, "trio.yaml", w);
    const auto r = run(shellQuote(GEMEL_BINARY) + " train --epochs 1 --config " +
                       shellQuote(d->file("trio.yaml")) + " --out " +
                       shellQuote(d->file("trained")));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return d;
  }();
  return *dir;
}

// Runs `prefix gemel merge` into out/<name> with 4 fixed steps per trial; returns its output.
std::string merge(const std::string& prefix, const std::string& name, const std::string& extra) {
  const auto& d = workload();
  const auto r = run(prefix + shellQuote(GEMEL_BINARY) + " merge --config " +
                     shellQuote(d.file("trained/trio.trained.yaml")) + " --out " +
                     shellQuote(d.file(name)) + " --fixed-steps 4 " + extra);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.output;
}

// The one-rank GPU merge the others compare against, run once.
const std::string& oneRankOnTheGpu() {
  static const std::string out = merge("", "gpu1", "");
  return out;
}

io::Results results(const std::string& name) {
  return io::readResults(workload().file(name + "/results.h5"));
}

// Same decisions, and the largest relative weight difference over every task's state_dict.
double compare(const io::Results& a, const io::Results& b) {
  EXPECT_EQ(a.plan_json, b.plan_json);
  EXPECT_EQ(a.trials.size(), b.trials.size());
  for (std::size_t i = 0; i < std::min(a.trials.size(), b.trials.size()); ++i) {
    EXPECT_EQ(a.trials[i].decision, b.trials[i].decision) << a.trials[i].label;
  }
  double worst = 0;
  for (const auto& task : a.tasks) {
    const auto sa = io::fullStateDict(a, task.name);
    const auto sb = io::fullStateDict(b, task.name);
    std::map<std::string, torch::Tensor> mb(sb.begin(), sb.end());
    for (const auto& [name, t] : sa) {
      if (!torch::isFloatingType(t.scalar_type())) continue;
      const double scale = std::max(t.abs().max().item<double>(), 1e-6);
      worst = std::max(worst, (t - mb.at(name)).abs().max().item<double>() / scale);
    }
  }
  return worst;
}

TEST(GpuMerge, OneRankOnTheGpuMatchesTheCpu) {
  GEMEL_REQUIRE_CUDA_DEVICES(1);
  const auto cpu = merge("CUDA_VISIBLE_DEVICES= ", "cpu", "");
  EXPECT_NE(cpu.find("training on cpu"), std::string::npos) << cpu;
  const auto& gpu = oneRankOnTheGpu();
  EXPECT_NE(gpu.find("training on cuda:0"), std::string::npos) << gpu;
  EXPECT_LE(compare(results("cpu"), results("gpu1")), 2e-2);
}

TEST(GpuMerge, TwoRanksOnOneGpuStageGradientsThroughMpi) {
  GEMEL_REQUIRE_CUDA_DEVICES(1);
  oneRankOnTheGpu();
  const auto out = merge("CUDA_VISIBLE_DEVICES=0 " + mpirun(2), "mpi2", "--backend mpi");
  EXPECT_NE(out.find("training on cuda:0"), std::string::npos) << out;
  EXPECT_NE(out.find("gradient synchronisation: mpi"), std::string::npos) << out;
  EXPECT_LE(compare(results("gpu1"), results("mpi2")), 1e-3);
}

TEST(GpuMerge, TwoRanksOnTwoGpusReduceOverNccl) {
  GEMEL_REQUIRE_CUDA_DEVICES(2);
  oneRankOnTheGpu();
  const auto out = merge(mpirun(2), "nccl2", "--backend nccl");
  EXPECT_NE(out.find("gradient synchronisation: nccl"), std::string::npos) << out;
  EXPECT_LE(compare(results("gpu1"), results("nccl2")), 1e-3);
}

TEST(GpuVersion, ListsTheDevicesLibTorchSees) {
  GEMEL_REQUIRE_CUDA_DEVICES(1);
  const auto r = run(shellQuote(GEMEL_BINARY) + " version");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(format("CUDA devices:  {}", torch::cuda::device_count())),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("cuda:0  "), std::string::npos) << r.output;
}

}  // namespace
}  // namespace gemel
