// gemel bench's CUDA-graph mode (ctest label `gpu`): the step captured once and replayed trains
// as the eager step does (the same steps and draws, so the same loss), in both memory formats.
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

}  // namespace
}  // namespace gemel
