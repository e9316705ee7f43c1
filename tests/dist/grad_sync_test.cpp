// GradSync without mpirun: three ranks as threads, tensors held by all three, by ranks {0,1}
// and by {1,2}, in buckets small enough to need several; gradients as views into the buckets
// and as separate tensors; buffer averaging.
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

double expectedSum(const std::vector<int>& ranks) {
  double s = 0;
  for (const int r : ranks) s += r + 1;
  return s;
}

void reduceOnThreads(bool views) {
  Groups groups;
  std::vector<std::string> failures(3);
  std::vector<std::size_t> buckets(3, 0);
  groups.all.run([&](int rank) {
    CommunicatorCache cache(Backend::kMpi, torch::kCPU);
    adopt(groups, cache, rank);
    std::vector<SyncEntry> entries;
    for (const auto& s : kSpecs) {
      if (std::find(s.ranks.begin(), s.ranks.end(), rank) == s.ranks.end()) continue;
      auto t = torch::zeros(s.shape).set_requires_grad(true);
      t.mutable_grad() = torch::full(s.shape, static_cast<float>(rank + 1));
      entries.push_back({s.key, t, s.ranks});
    }
    auto held = entries;
    GradSync sync(cache, entries, /*bucket_bytes=*/4096, views);
    buckets[rank] = sync.buckets();
    {
      torch::NoGradGuard no_grad;  // views start at zero: write this rank's gradients again
      for (auto& e : held) e.tensor.mutable_grad().fill_(rank + 1);
    }
    for (int round = 0; round < 2; ++round) {
      sync.reduceGradients();
      for (const auto& e : held) {
        // Round 2 starts from round 1's sum on every holder: n times that sum.
        const double n = static_cast<double>(e.ranks.size());
        const double expect = expectedSum(e.ranks) * (round == 0 ? 1 : n);
        if (!e.tensor.grad().eq(expect).all().item<bool>())
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
    CommunicatorCache cache(Backend::kMpi, torch::kCPU);
    adopt(groups, cache, rank);
    auto mean = torch::full({10}, static_cast<float>(rank));
    auto count = torch::full({1}, static_cast<int64_t>(rank), torch::kLong);
    GradSync sync(cache, {{"mean", mean, {0, 1, 2}}, {"count", count, {0, 1, 2}}});
    sync.averageValues();
    if (!mean.eq(1.0f).all().item<bool>()) failures[rank] += "mean; ";
    if (count.item<int64_t>() != rank) failures[rank] += "count; ";
  });
  for (int r = 0; r < 3; ++r) EXPECT_EQ(failures[r], "") << "rank " << r;
}

}  // namespace
}  // namespace gemel::dist
