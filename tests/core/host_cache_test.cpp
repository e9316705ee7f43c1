// The caching host allocator (core/host_cache): large CPU tensors reuse their blocks, small
// ones and LibTorch's raw allocation interface work as before, and the idle blocks stay under
// the cap.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <c10/core/CPUAllocator.h>

#include "gemel/core/host_cache.h"

namespace gemel {
namespace {

constexpr int64_t kMiB = 1 << 20;

torch::Tensor bytes(int64_t n) { return torch::empty({n}, torch::kUInt8); }

TEST(HostCache, ALargeTensorReusesTheBlockOfTheOneFreedBeforeIt) {
  ASSERT_TRUE(installHostCache(std::size_t(512) << 20));
  releaseHostCache();
  const auto before = hostCacheStats();
  void* first = nullptr;
  {
    auto t = bytes(40 * kMiB);
    t.fill_(7);
    first = t.data_ptr();
  }
  auto again = bytes(40 * kMiB);
  EXPECT_EQ(again.data_ptr(), first);
  const auto after = hostCacheStats();
  EXPECT_EQ(after.hits - before.hits, 1);
  EXPECT_EQ(after.misses - before.misses, 1);
  EXPECT_GE(after.live_bytes, std::size_t(40 * kMiB));
  // Reused memory is not assumed zero: zeros() writes it.
  again.reset();
  auto zeros = torch::zeros({40 * kMiB}, torch::kUInt8);
  EXPECT_EQ(zeros.sum().item<int64_t>(), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(zeros.data_ptr()) % 64, 0u);
}

TEST(HostCache, SmallTensorsAndRawAllocationsWorkAsBefore) {
  ASSERT_TRUE(installHostCache(std::size_t(512) << 20));
  const auto before = hostCacheStats();
  auto small = torch::arange(1000, torch::kFloat);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data_ptr()) % 64, 0u);
  EXPECT_FLOAT_EQ(small.sum().item<float>(), 499500.0f);
  // oneDNN and others take memory through the raw interface, which needs one deleter.
  auto* alloc = c10::GetCPUAllocator();
  ASSERT_NE(alloc->raw_deleter(), nullptr);
  for (const std::size_t n : {std::size_t(100), std::size_t(64) << 20}) {
    void* p = alloc->raw_allocate(n);
    ASSERT_NE(p, nullptr);
    static_cast<char*>(p)[n - 1] = 1;
    alloc->raw_deallocate(p);
  }
  const auto after = hostCacheStats();
  EXPECT_EQ(after.misses - before.misses, 1) << "only the 64 MiB block is the cache's";
  EXPECT_EQ(after.live_bytes, before.live_bytes);
}

TEST(HostCache, IdleBlocksStayUnderTheCap) {
  ASSERT_TRUE(installHostCache(std::size_t(96) << 20));
  {
    auto a = bytes(40 * kMiB), b = bytes(40 * kMiB), c = bytes(40 * kMiB);
    a.fill_(1), b.fill_(2), c.fill_(3);
  }
  const auto s = hostCacheStats();
  EXPECT_LE(s.idle_bytes, std::size_t(96) << 20);
  EXPECT_GT(s.idle_bytes, 0u);
  releaseHostCache();
  EXPECT_EQ(hostCacheStats().idle_bytes, 0u);
  // A training-like loop reuses its blocks instead of mapping new ones.
  ASSERT_TRUE(installHostCache(std::size_t(512) << 20));
  const auto start = hostCacheStats();
  auto w = torch::randn({64, 32, 3, 3});
  for (int step = 0; step < 4; ++step) {
    auto x = torch::randn({16, 32, 64, 64});  // 8 MiB activations
    auto y = torch::conv2d(x, w, {}, 1, 1).relu();
    EXPECT_EQ(y.size(1), 64);
  }
  const auto end = hostCacheStats();
  EXPECT_GT(end.hits - start.hits, end.misses - start.misses);
}

}  // namespace
}  // namespace gemel
