#pragma once
// Which examples a rank reads: rank r of n gets a contiguous block of the dataset (disjoint
// blocks whose union is everything; sizes differ by at most one), visited in an order shuffled
// by (seed, epoch, rank).
#include <cstdint>
#include <vector>

namespace gemel::data {

struct ShardRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

ShardRange shardRange(int64_t dataset_size, int rank, int world_size);

// The shard's indices in this epoch's order (ascending when shuffle is false).
std::vector<int64_t> epochOrder(const ShardRange& shard, bool shuffle, uint64_t seed, int64_t epoch,
                                int rank);

}  // namespace gemel::data
