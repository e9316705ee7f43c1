// Run under mpirun (tests/dist/dist_test.cpp, MpiWorld.SplitsIntoRankGroups): MpiWorld::split
// makes rank groups over MPI, each agreeing within itself. Prints one "ok" line per rank and
// exits 0, or names what is wrong and exits 1.
#include <cstdio>
#include <string>
#include <vector>

#include "gemel/dist/cluster.h"
#include "gemel/dist/world.h"

namespace {

int check() {
  using gemel::dist::MpiWorld;
  const MpiWorld world(gemel::dist::Cluster::init());
  const int rank = world.rank(), n = world.size();
  int bad = 0;
  auto expect = [&](bool ok, const std::string& what) {
    if (!ok) {
      std::printf("rank %d: %s\n", rank, what.c_str());
      ++bad;
    }
  };
  // Even and odd ranks, each group ranked in reverse (keys -rank).
  const auto group = world.split(rank % 2, -rank);
  expect(group != nullptr, "no group for a color >= 0");
  if (!group) return 1;
  int members = 0, position = 0;
  for (int r = rank % 2; r < n; r += 2) {
    ++members;
    if (r > rank) ++position;  // higher ranks come first
  }
  expect(group->size() == members, "group size " + std::to_string(group->size()));
  expect(group->rank() == position, "group rank " + std::to_string(group->rank()));
  std::vector<int64_t> v{rank, 1};
  group->sum(v);  // only this group's ranks
  int64_t want = 0;
  for (int r = rank % 2; r < n; r += 2) want += r;
  expect(v[0] == want && v[1] == members, "group sum " + std::to_string(v[0]));
  // The group's rank 0 (its highest world rank) shares its world rank.
  const auto root = group->share(std::to_string(rank), 0);
  expect(root == std::to_string(rank % 2 + 2 * (members - 1)), "shared " + root);
  // Only rank 0 in a group of its own: the others get none.
  const auto alone = world.split(rank == 0 ? 0 : -1, 0);
  expect((alone != nullptr) == (rank == 0), "color -1 gave a group");
  if (alone) expect(alone->size() == 1 && alone->max(7) == 7, "a group of one");
  // The whole world still agrees after its groups did.
  expect(world.max(rank) == n - 1, "world max");
  if (bad == 0)
    std::printf("rank %d of %d: group rank %d of %d, sum %lld: ok\n", rank, n, group->rank(),
                group->size(), static_cast<long long>(v[0]));
  return bad == 0 ? 0 : 1;
}

}  // namespace

int main() {
  const int rc = check();
  gemel::dist::Cluster::finalize();
  return rc;
}
