// gemel train chooses each task's weights on a part of its train split held out from training,
// never on the val split that sets the merge's target. The val labels here are permuted, so
// a model that learned the task scores near zero on them: choosing on val would keep the
// weights with the best permuted score (at least the ~1/3 of an untrained model), choosing on
// the held-out part keeps the weights that learned.
#include <gtest/gtest.h>

#include <regex>

#include "cli_support.h"
#include "fashion_workload.h"
#include "gemel/core/format.h"
#include "test_support.h"

namespace gemel {
namespace {

using testing::gemel;
using testing::run;
using testing::shellQuote;
using testing::TempDir;

TEST(TrainCli, ChoosesItsEpochOnHeldOutTrainingDataNotOnVal) {
  TempDir dir;
  testing::FashionWorkload w;
  w.header =
      "name: held\n"
      "defaults: {batch_size: 32, accuracy_target: 0.9}\n"
      "search: {lr: 0.01}\n";
  // Trousers, bags and ankle boots: classes a few epochs tell apart, so that the permuted val
  // score of a model that learned them is far below an untrained model's.
  w.tasks = {{"shoes_a_resnet18", {1, 8, 9}}};
  w.max_train = 480;
  w.max_val = 96;
  const auto yaml = testing::writeFashionWorkload(dir, "held.yaml", w);
  // The val split's labels, each moved to the next class.
  auto r = run(shellQuote(GEMEL_PYTHON) + " -c " + shellQuote(R"PY(
import sys, h5py
with h5py.File(sys.argv[1], "r+", libver=("v110", "latest")) as f:
    labels = f["val/labels"]
    labels[...] = (labels[...] + 1) % 3
)PY") + " " + shellQuote(dir.file("shoes_a_CL.h5")));
  ASSERT_EQ(r.exit_code, 0) << r.output;

  r = gemel(format("train --config {} --epochs 4 --out {}", shellQuote(yaml),
                   shellQuote(dir.file("trained"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // task, arch, epochs, seconds, held-out score, val score, metric
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      r.output, m,
      std::regex("shoes_a_resnet18 +resnet18 +[0-9.]+ +[0-9.]+ +([0-9.]+) +([0-9.]+) top1")))
      << r.output;
  const double held_out = std::stod(m[1]), val = std::stod(m[2]);
  EXPECT_GT(held_out, 0.75) << "the task did not learn\n" << r.output;
  EXPECT_LT(val, 0.2) << "the weights kept are not those chosen on the held-out data\n" << r.output;
  // The trained workload records the val score, the one the merge's target comes from.
  const auto trained = testing::readText(dir.file("trained/held.trained.yaml"));
  ASSERT_TRUE(std::regex_search(trained, m, std::regex("unmerged_acc: ([0-9.e-]+)"))) << trained;
  EXPECT_NEAR(std::stod(m[1]), val, 1e-4) << trained;
}

// A step size at which the loss diverges is not an error: the run starts again from the
// initial weights at a quarter of the step, until it trains.
TEST(TrainCli, ADivergingRunStartsAgainAtAQuarterOfTheStep) {
  TempDir dir;
  testing::FashionWorkload w;
  w.header = "name: steep\ndefaults: {batch_size: 32}\n";
  w.tasks = {{"shoes_a_resnet18", {1, 8, 9}}};
  w.size = 32;
  w.max_train = 320;
  const auto yaml = testing::writeFashionWorkload(dir, "steep.yaml", w);
  const auto r = gemel(format("train --config {} --epochs 3 --lr 50 --out {}", shellQuote(yaml),
                              shellQuote(dir.file("trained"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("the loss diverged at lr 50; starting again at lr 12.5"),
            std::string::npos)
      << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      r.output, m,
      std::regex("shoes_a_resnet18 +resnet18 +[0-9.]+ +[0-9.]+ +[0-9.]+ +([0-9.]+) top1")))
      << r.output;
  EXPECT_GT(std::stod(m[1]), 0.45) << "no better than chance (1/3)\n" << r.output;
}

}  // namespace
}  // namespace gemel
