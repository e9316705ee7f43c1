// roi_align, nms and batched_nms on a CUDA device against torchvision.ops on the CPU
// (ops_parity.h): gemel's CUDA kernels (src/ops/roi_ops_cuda.cu). Label `gpu`.
#include "cuda_devices.h"
#include "ops_parity.h"

namespace gemel::ops {
namespace {

TEST(GpuOps, RoiAlignNmsAndBatchedNmsOnCudaMatchTorchvision) {
  GEMEL_REQUIRE_CUDA_DEVICES(1);
  ASSERT_TRUE(haveCudaKernels()) << "this build has no CUDA kernels (LibTorch without CUDA?)";
  testing::TempDir dir;
  const auto ref = testing::opsReference(dir);
  // The backward's atomic adds land in any order: a few float32 roundings apart.
  testing::checkRoiAlign(ref, torch::kCUDA, 2e-5);
  testing::checkNms(ref, torch::kCUDA);
  // Half precision runs in float: within half's rounding of the float answer.
  const auto x = ref.at("ra0.input").to(torch::kCUDA);
  const auto rois = ref.at("ra0.rois").to(torch::kCUDA);
  const auto full = roiAlign(x, rois, 0.5, 3, 4, 2, false);
  const auto half = roiAlign(x.to(torch::kHalf), rois.to(torch::kHalf), 0.5, 3, 4, 2, false);
  EXPECT_EQ(half.scalar_type(), torch::kHalf);
  EXPECT_LE(testing::largestError(half.cpu(), full.cpu()), 2e-2);
}

}  // namespace
}  // namespace gemel::ops
