// The data path's GPU code (ctest label `gpu`): batched augmentation on the device, batches
// handed out in pinned host memory so that the copy to the device is asynchronous, and a task's
// next batch staged on the device on a side stream while a step computes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "augment_reference.h"
#include "cuda_devices.h"
#include "gemel/data/loader.h"
#include "gemel/data/sources.h"
#include "gemel/train/task.h"
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

TEST(GpuStaging, StagedBatchesAreTheStreamsOwnBatchesOnTheDevice) {
  GEMEL_REQUIRE_CUDA_DEVICES(1);
  gemel::testing::TempDir dir;
  FashionMnistOptions o;
  o.classes = {0, 2, 6};
  o.size = 16;
  o.max_train = 160;  // 5 batches of 32: the stream crosses an epoch below
  o.max_val = 32;
  convertFashionMnist(o, dir.file("tops.h5"));
  config::TaskConfig c;
  c.name = "tops";
  c.arch = "resnet18";
  c.num_classes = 3;
  c.dataset = dir.file("tops.h5");
  c.batch_size = 32;
  c.image_size = 16;
  train::TaskRuntime staged(c, 0, torch::kCUDA, 7), plain(c, 0, torch::kCUDA, 7);
  for (int step = 0; step < 8; ++step) {
    staged.stageNextBatch();
    staged.stageNextBatch();  // a second call while one is staged takes nothing more
    // The compute stream is busy while the copy runs on the side stream.
    auto busy = torch::randn({2048, 2048}, torch::kCUDA);
    for (int k = 0; k < 4; ++k) busy = busy.mm(busy).tanh_();
    const auto a = staged.nextTrainBatch();
    const auto b = plain.nextTrainBatch();
    ASSERT_TRUE(a.images.is_cuda()) << "step " << step;
    EXPECT_TRUE(torch::equal(a.images.cpu(), b.images.cpu())) << "step " << step;
    EXPECT_TRUE(torch::equal(a.labels.cpu(), b.labels.cpu())) << "step " << step;
    EXPECT_EQ(a.indices, b.indices) << "step " << step;
    EXPECT_EQ(staged.batchesTaken(), plain.batchesTaken());
    // The staged batch trains as the plain one does.
    EXPECT_NEAR(staged.trainLoss(a).item<double>(), plain.trainLoss(b).item<double>(), 1e-4)
        << "step " << step;
  }
  // Repositioning the stream drops what was staged ahead of it.
  staged.stageNextBatch();
  staged.resumeStream(2, 2);
  plain.resumeStream(2, 2);
  EXPECT_EQ(staged.nextTrainBatch().indices, plain.nextTrainBatch().indices);
}

}  // namespace
}  // namespace gemel::data
