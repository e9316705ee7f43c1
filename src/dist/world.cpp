#include "gemel/dist/world.h"

#include <algorithm>

#include "gemel/core/error.h"
#include "gemel/dist/cluster.h"

namespace gemel::dist {

void World::concat(std::vector<int64_t>& values) const {
  const int n = size(), me = rank();
  if (n == 1) return;
  // Two sums: every rank's length, then each rank's values in its own slot of a zeroed whole.
  std::vector<int64_t> lengths(static_cast<std::size_t>(n), 0);
  lengths[static_cast<std::size_t>(me)] = static_cast<int64_t>(values.size());
  sum(lengths);
  int64_t before = 0, total = 0;
  for (int r = 0; r < n; ++r) {
    if (r < me) before += lengths[static_cast<std::size_t>(r)];
    total += lengths[static_cast<std::size_t>(r)];
  }
  std::vector<int64_t> all(static_cast<std::size_t>(total), 0);
  std::copy(values.begin(), values.end(), all.begin() + before);
  sum(all);
  values = std::move(all);
}

void SingleWorld::send(const std::vector<char>&, int dest, int tag) const {
  GEMEL_ASSERT(false, "SingleWorld: send to rank {} (tag {}) in a world of one", dest, tag);
}

std::vector<char> SingleWorld::receive(int source, int tag) const {
  GEMEL_ASSERT(false, "SingleWorld: receive from rank {} (tag {}) in a world of one", source, tag);
  return {};
}

int ClusterWorld::rank() const { return cluster_.rank(); }
int ClusterWorld::size() const { return cluster_.size(); }
int ClusterWorld::localRank() const { return cluster_.localRank(); }
int ClusterWorld::localSize() const { return cluster_.localSize(); }

std::string ClusterWorld::share(std::string text, int root) const {
  cluster_.broadcast(text, root);
  return text;
}

void ClusterWorld::sum(std::vector<int64_t>& values) const { cluster_.sumInPlace(values); }
int64_t ClusterWorld::max(int64_t value) const { return cluster_.max(value); }

void ClusterWorld::send(const std::vector<char>& bytes, int dest, int tag) const {
  cluster_.send(bytes, dest, tag);
}

std::vector<char> ClusterWorld::receive(int source, int tag) const {
  return cluster_.receive(source, tag);
}

}  // namespace gemel::dist
