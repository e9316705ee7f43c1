// GradSync without mpirun: three ranks as threads, tensors held by all three, by ranks {0,1}
// and by {1,2}, in buckets small enough to need several; gradients as views into the buckets
// and as separate tensors; buffer averaging. Every element of every tensor on every rank has
// its own value, so an offset inside a bucket, two tensors swapped, or a rank's values taken
// for another's changes the sums.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gemel/dist/grad_sync.h"
#include "thread_ranks.h"

namespace gemel::dist {
namespace {

using testing::ThreadRanks;

struct Groups {
  ThreadRanks all{3}, low{2}, high{2};  // {0,1,2}, {0,1}, {1,2}
};

// This rank's communicators: its rank within each group it belongs to.
void adopt(Groups& g, CommunicatorCache& cache, int rank) {
  cache.adopt({0, 1, 2}, g.all.communicator(rank));
  if (rank <= 1) cache.adopt({0, 1}, g.low.communicator(rank));
  if (rank >= 1) cache.adopt({1, 2}, g.high.communicator(rank - 1));
}

// The tensors rank `rank` holds: key, shape, holders.
struct Spec {
  std::string key;
  std::vector<int64_t> shape;
  std::vector<int> ranks;
};
const std::vector<Spec> kSpecs = {
    {"a", {64, 32}, {0, 1, 2}}, {"b", {300}, {0, 1, 2}},  {"c", {17, 5}, {0, 1}},
    {"d", {1000}, {0, 1}},      {"e", {8, 8, 3}, {1, 2}}, {"f", {2}, {0, 1, 2}},
};

// Rank r's gradient of tensor `index`: distinct per rank, per tensor and per element, and
// small integers, so that float sums are exact.
torch::Tensor gradientOf(int rank, std::size_t index, const std::vector<int64_t>& shape) {
  const int64_t n = c10::multiply_integers(shape);
  auto values = torch::arange(n, torch::kFloat).remainder(251) +
                static_cast<float>(1000 * (rank + 1) + 300 * static_cast<int>(index));
  return values.reshape(shape);
}

torch::Tensor expectedSum(std::size_t index, const Spec& spec) {
  auto total = torch::zeros(spec.shape);
  for (const int r : spec.ranks) total += gradientOf(r, index, spec.shape);
  return total;
}

void reduceOnThreads(bool views) {
  Groups groups;
  std::vector<std::string> failures(3);
  std::vector<std::size_t> buckets(3, 0);
  groups.all.run([&](int rank) {
    const testing::ThreadWorld world(groups.all, rank);
    CommunicatorCache cache(world, Backend::kMpi, torch::kCPU);
    adopt(groups, cache, rank);
    std::vector<SyncEntry> entries;
    std::vector<std::size_t> index;
    for (std::size_t k = 0; k < kSpecs.size(); ++k) {
      const auto& s = kSpecs[k];
      if (std::find(s.ranks.begin(), s.ranks.end(), rank) == s.ranks.end()) continue;
      auto t = torch::zeros(s.shape).set_requires_grad(true);
      t.mutable_grad() = gradientOf(rank, k, s.shape);
      entries.push_back({s.key, t, s.ranks});
      index.push_back(k);
    }
    auto held = entries;
    GradSync sync(cache, entries, /*bucket_bytes=*/4096, views);
    buckets[rank] = sync.buckets();
    {
      torch::NoGradGuard no_grad;  // views start at zero: write this rank's gradients again
      for (std::size_t i = 0; i < held.size(); ++i)
        held[i].tensor.mutable_grad().copy_(gradientOf(rank, index[i], kSpecs[index[i]].shape));
    }
    for (int round = 0; round < 2; ++round) {
      sync.reduceGradients();
      for (std::size_t i = 0; i < held.size(); ++i) {
        const auto& e = held[i];
        // Round 2 starts from round 1's sum on every holder: n times that sum.
        const double n = static_cast<double>(e.ranks.size());
        const auto expect = expectedSum(index[i], kSpecs[index[i]]) * (round == 0 ? 1 : n);
        if (!torch::equal(e.tensor.grad(), expect))
          failures[rank] += e.key + " round " + std::to_string(round) + "; ";
      }
    }
  });
  for (int r = 0; r < 3; ++r) EXPECT_EQ(failures[r], "") << "rank " << r;
  EXPECT_GE(buckets[1], 3u) << "small buckets: several per rank set";
}

TEST(GradSyncThreads, SumsEachTensorOverExactlyItsRanksWithViews) { reduceOnThreads(true); }

TEST(GradSyncThreads, SumsEachTensorOverExactlyItsRanksWithoutViews) { reduceOnThreads(false); }

TEST(GradSyncThreads, AveragesFloatingBuffersAndLeavesIntegersAlone) {
  Groups groups;
  std::vector<std::string> failures(3);
  groups.all.run([&](int rank) {
    const testing::ThreadWorld world(groups.all, rank);
    CommunicatorCache cache(world, Backend::kMpi, torch::kCPU);
    adopt(groups, cache, rank);
    // Per element and per rank: 3 * rank + 8 * element; the mean over ranks 0..2 is
    // 3 + 8 * element.
    auto mean = torch::arange(10, torch::kFloat) * 8 + 3.0f * static_cast<float>(rank);
    auto count = torch::full({1}, static_cast<int64_t>(rank), torch::kLong);
    GradSync sync(cache, {{"mean", mean, {0, 1, 2}}, {"count", count, {0, 1, 2}}});
    sync.averageValues();
    if (!torch::equal(mean, torch::arange(10, torch::kFloat) * 8 + 3.0f))
      failures[rank] += "mean; ";
    if (count.item<int64_t>() != rank) failures[rank] += "count; ";
  });
  for (int r = 0; r < 3; ++r) EXPECT_EQ(failures[r], "") << "rank " << r;
}

}  // namespace
}  // namespace gemel::dist
