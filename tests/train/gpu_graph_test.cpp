// The joint trainer's CUDA graphs (ctest label `gpu`): after its eager warm-up steps, the
// step's forward and backward are captured once and replayed on static copies of each step's
// inputs. The graphed trainer must train as the eager trainer does on the same batches and
// draws: in fp32 within 1e-4 (cuDNN may pick other algorithms inside a capture), in bf16
// within bf16's rounding.
#include <gtest/gtest.h>

#include <cstdio>

#include "cuda_devices.h"
#include "gemel/train/joint_trainer.h"
#include "tied_pair.h"

namespace gemel::train {
namespace {

using gemel::testing::TiedPair;

using gemel::testing::trainPair;

TEST(GpuGraphs, TheTrainersGraphedStepTrainsAsItsEagerStep) {
  GEMEL_REQUIRE_CUDA_DEVICES(1);
  gemel::testing::TempDir dir;
  gemel::testing::writeTops(dir, 32);
  constexpr int kSteps = 12;  // past an epoch (8 batches): the staged stream goes on
  for (const std::string precision : {"fp32", "bf16"}) {
    TiedPair eager(dir.file("tops.h5"), torch::kCUDA, precision);
    TiedPair graphed(dir.file("tops.h5"), torch::kCUDA, precision);
    const auto start = graphed.state(0)[0].clone();
    const auto e = trainPair(eager, TrainOptions::Capture::kOff, kSteps);
    const auto g = trainPair(graphed, TrainOptions::Capture::kAuto, kSteps);
    ASSERT_EQ(e.steps, kSteps) << precision;
    ASSERT_EQ(g.steps, kSteps) << precision;
    EXPECT_FALSE(g.nan_loss) << precision;
    EXPECT_EQ(e.graphed_steps, 0) << precision;
    EXPECT_EQ(g.graphed_steps, kSteps - TrainOptions::kGraphWarmups) << precision;
    const double worst = graphed.largestDifference(eager);
    std::printf("%s: graphed vs eager trainer: largest difference %.3g over %d steps\n",
                precision.c_str(), worst, kSteps);
    EXPECT_LE(worst, precision == "fp32" ? 1e-4 : 2e-2) << precision;
    EXPECT_TRUE(graphed.tied());
    // Training moved the weights.
    EXPECT_GT((graphed.state(0)[0] - start).abs().max().item<double>(), 1e-4) << precision;
  }
}

}  // namespace
}  // namespace gemel::train
