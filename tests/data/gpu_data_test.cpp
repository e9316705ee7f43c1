// The data path's GPU code (ctest label `gpu`): batched augmentation on the device, and batches
// handed out in pinned host memory so that the copy to the device is asynchronous.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "augment_reference.h"
#include "cuda_devices.h"
#include "gemel/data/loader.h"
#include "gemel/data/sources.h"
#include "test_support.h"

namespace gemel::data {
namespace {

TEST(GpuTransforms, BatchedOpsMatchReferenceOps) {
  GEMEL_REQUIRE_CUDA_DEVICES(1);
  const auto c = augmentCase();
  const auto expect = referenceAugment(c.images, c.transforms, c.a);
  const auto gpu = applyAugmentation(c.images, c.transforms, c.a, torch::kCUDA);
  ASSERT_TRUE(gpu.is_cuda());
  const auto back = gpu.cpu();
  EXPECT_TRUE(torch::allclose(back, expect, 1e-5, 1e-5))
      << (back - expect).abs().max().item<float>();
}

TEST(GpuLoader, BatchesArePinnedAndCopyToTheDeviceIntact) {
  GEMEL_REQUIRE_CUDA_DEVICES(1);
  gemel::testing::TempDir dir;
  FashionMnistOptions o;
  o.classes = {0, 1};
  o.max_train = 96;
  o.max_val = 32;
  convertFashionMnist(o, dir.file("two.h5"));
  auto reader = std::make_shared<const DatasetReader>(dir.file("two.h5"));
  LoaderOptions lo;
  lo.batch_size = 32;
  lo.shuffle = false;
  ShardedLoader loader(reader, lo);
  loader.startEpoch(0);
  int batches = 0;
  while (auto b = loader.next()) {
    EXPECT_TRUE(b->images.is_pinned()) << "batch " << batches;
    const auto on_device = b->images.to(torch::kCUDA, /*non_blocking=*/true);
    EXPECT_TRUE(torch::equal(on_device.cpu(), b->images)) << "batch " << batches;
    ++batches;
  }
  EXPECT_EQ(batches, 3);
}

}  // namespace
}  // namespace gemel::data
