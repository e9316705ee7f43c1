// gemel train chooses each task's weights on a part of its train split held out from training,
// never on the val split that sets the merge's target. The val labels here are permuted, so
// a model that learned the task scores near zero on them: choosing on val would keep the
// weights with the best permuted score (at least the ~1/3 of an untrained model), choosing on
// the held-out part keeps the weights that learned.
#include <gtest/gtest.h>

#include <filesystem>
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

// No --lr: a task from scratch starts at the from-scratch step, one that starts from its
// weights at search.lr, the fine-tuning step.
TEST(TrainCli, PicksItsStepFromWhereTheTaskStarts) {
  TempDir dir;
  const auto yaml = testing::writeOneTaskWorkload(
      dir, "steps.yaml", "name: steps\ndefaults: {batch_size: 32}\nsearch: {lr: 0.003}\n",
      {"shoes_a_resnet18", {1, 8, 9}}, 128, 32);
  auto r = gemel(format("train --config {} --epochs 1 --out {}", shellQuote(yaml),
                        shellQuote(dir.file("first"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("task 'shoes_a_resnet18': starts from scratch: lr 0.02"),
            std::string::npos)
      << r.output;
  r = gemel(format("train --config {} --epochs 1 --out {}",
                   shellQuote(dir.file("first/steps.trained.yaml")),
                   shellQuote(dir.file("second"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("task 'shoes_a_resnet18': starts from its weights: lr 0.003"),
            std::string::npos)
      << r.output;
}

// gemel train of one resnet18 on 320 Fashion-MNIST images (trousers, bags, ankle boots) for
// `epochs` epochs, starting at step size `lr`.
testing::CommandResult trainAt(const TempDir& dir, double lr, int epochs) {
  const auto yaml =
      testing::writeOneTaskWorkload(dir, "steep.yaml", "name: steep\ndefaults: {batch_size: 32}\n",
                                    {"shoes_a_resnet18", {1, 8, 9}}, 320, 96, 32);
  return gemel(format("train --config {} --epochs {} --lr {} --out {}", shellQuote(yaml), epochs,
                      lr, shellQuote(dir.file("trained"))));
}

// A step size at which the loss diverges is not an error: the run starts again from the
// initial weights at a quarter of the step.
TEST(TrainCli, ADivergingRunStartsAgainAtAQuarterOfTheStep) {
  TempDir dir;
  const auto r = trainAt(dir, 50, 3);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("the loss diverged (not finite) at lr 50; starting again at lr 12.5"),
            std::string::npos)
      << r.output;
}

// So does a step size at which the loss stays finite but the model learns nothing (as vgg16
// from scratch at lr 0.02): here resnet18 at lr 1 and 0.25, until a smaller step learns.
TEST(TrainCli, AStalledRunStartsAgainAtAQuarterOfTheStepUntilItLearns) {
  TempDir dir;
  const auto r = trainAt(dir, 1, 6);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m,
                                std::regex("it did not learn \\(held-out [0-9.]+ against ([0-9.]+) "
                                           "untrained\\) at lr 1; starting again at lr 0.25")))
      << r.output;
  const double untrained = std::stod(m[1]);
  EXPECT_EQ(r.output.find("keeping its best run"), std::string::npos) << r.output;
  ASSERT_TRUE(std::regex_search(
      r.output, m,
      std::regex("shoes_a_resnet18 +resnet18 +[0-9.]+ +[0-9.]+ +([0-9.]+) +[0-9.]+ top1")))
      << r.output;
  EXPECT_GE(std::stod(m[1]), untrained + 0.05 * (1 - untrained)) << r.output;
}

// A run that ends no better than the untrained model also starts again at a quarter of the step;
// when no step size learns, the best run is kept with a warning instead of an error. Here no
// step can learn: examples i and i + 10 of each block of 20 are the same image with the other
// label, and the held-out tenth (every tenth example) holds such pairs, so every model, trained
// or not, scores exactly 0.5 on it.
TEST(TrainCli, ARunThatDoesNotLearnStartsAgainThenKeepsItsBest) {
  TempDir dir;
  testing::FashionWorkload w;
  // (search.lr is the merge's fine-tuning step: a task from scratch starts at 0.02)
  w.header = "name: flat\ndefaults: {batch_size: 32}\nsearch: {lr: 0.01}\n";
  w.tasks = {{"flat_resnet18", {1, 8}}};
  w.size = 32;
  w.max_train = 320;
  w.max_val = 32;
  const auto yaml = testing::writeFashionWorkload(dir, "flat.yaml", w);
  auto r = run(shellQuote(GEMEL_PYTHON) + " -c " + shellQuote(R"PY(
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+", libver=("v110", "latest")) as f:
    i = np.arange(f["train/labels"].shape[0])
    f["train/images"][...] = f["train/images"][...][(i // 20) * 20 + i % 10]
    f["train/labels"][...] = (i // 10) % 2
)PY") + " " + shellQuote(dir.file("flat_CL.h5")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = gemel(format("train --config {} --epochs 1 --out {}", shellQuote(yaml),
                   shellQuote(dir.file("trained"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* step :
       {"at lr 0.02; starting again at lr 0.005", "at lr 0.005; starting again at lr 0.00125",
        "at lr 0.00125; starting again at lr 0.0003125"}) {
    EXPECT_NE(r.output.find(std::string("it did not learn (held-out 0.5000 against 0.5000 "
                                        "untrained) ") +
                            step),
              std::string::npos)
        << step << "\n"
        << r.output;
  }
  EXPECT_NE(r.output.find("at every step size down to 0.0003125; keeping its best run"),
            std::string::npos)
      << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir.file("trained/flat.trained.yaml"))) << r.output;
}

}  // namespace
}  // namespace gemel
