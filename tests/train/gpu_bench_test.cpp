// gemel bench on CUDA (ctest label `gpu`): the CUDA-graph mode's step, captured once and
// replayed, trains as the eager step does (the same steps and draws, so the same loss), in both
// memory formats; a Faster R-CNN's step runs on the device's own kernels.
#include <gtest/gtest.h>

#include <cmath>

#include "cli_support.h"
#include "cuda_devices.h"

namespace gemel {
namespace {

using testing::gemel;
using testing::jsonNumber;

TEST(GpuBench, TheCudaGraphStepTrainsAsTheEagerStep) {
  GEMEL_REQUIRE_CUDA_DEVICES(1);
  const auto r = gemel(
      "bench --arch resnet18,resnet34 --size 64 --batch 8 --classes 10 --steps 4 "
      "--modes fp32,fp32-graph,fp32-cl,fp32-cl-graph --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto json = r.output.substr(r.output.find('{'));
  for (const std::string format : {"", " channels_last"}) {
    const double eager = jsonNumber(json, "\"mode\":\"fp32" + format + "\"", "loss");
    const double graph = jsonNumber(json, "\"mode\":\"fp32" + format + " cuda graph\"", "loss");
    EXPECT_GT(eager, 0) << json;
    EXPECT_NEAR(graph, eager, 1e-3 * std::abs(eager)) << "fp32" << format << ": " << json;
    EXPECT_GT(jsonNumber(json, "\"mode\":\"fp32" + format + " cuda graph\"", "images_per_s"), 0);
  }
  // Where a graph cannot hold the step: one clear error.
  const auto detector =
      gemel("bench --arch yolov3-tiny --size 64 --batch 2 --steps 1 --modes fp32-graph");
  EXPECT_EQ(detector.exit_code, 2) << detector.output;
  EXPECT_NE(detector.output.find("ResNet classifiers only"), std::string::npos) << detector.output;
}

// A Faster R-CNN training step on CUDA (gemel's roi_align and nms kernels, its losses, backward
// and SGD) in fp32 and bf16: it runs, on the GPU, with a finite positive loss in both.
TEST(GpuBench, AFasterRcnnStepTrainsOnCuda) {
  GEMEL_REQUIRE_CUDA_DEVICES(1);
  const auto r = gemel(
      "bench --arch fasterrcnn:resnet18 --size 128 --batch 4 --classes 2 --steps 3 "
      "--modes fp32,bf16 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto json = r.output.substr(r.output.find('{'));
  EXPECT_NE(json.find("\"device\":\"cuda"), std::string::npos) << json;
  for (const std::string mode : {"fp32", "bf16"}) {
    const double loss = jsonNumber(json, "\"mode\":\"" + mode + "\"", "loss");
    EXPECT_TRUE(std::isfinite(loss) && loss > 0) << mode << ": " << json;
    EXPECT_GT(jsonNumber(json, "\"mode\":\"" + mode + "\"", "images_per_s"), 0) << json;
  }
}

}  // namespace
}  // namespace gemel
