#include "gemel/data/shard.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "gemel/core/error.h"

namespace gemel::data {

ShardRange shardRange(int64_t n, int rank, int world) {
  GEMEL_ASSERT(world >= 1 && rank >= 0 && rank < world, "rank {} of {}", rank, world);
  const int64_t base = n / world, extra = n % world;
  ShardRange r;
  r.begin = rank * base + std::min<int64_t>(rank, extra);
  r.end = r.begin + base + (rank < extra ? 1 : 0);
  return r;
}

std::vector<int64_t> epochOrder(const ShardRange& shard, bool shuffle, uint64_t seed, int64_t epoch,
                                int rank) {
  std::vector<int64_t> order(shard.size());
  std::iota(order.begin(), order.end(), shard.begin);
  if (shuffle) {
    std::seed_seq seq{seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(rank),
                      uint64_t{0x9e3779b9}};
    std::mt19937_64 rng(seq);
    std::shuffle(order.begin(), order.end(), rng);
  }
  return order;
}

}  // namespace gemel::data
