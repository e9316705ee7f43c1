#include "gemel/dist/world.h"

#include "mpi_check.h"

#include <algorithm>

#include "gemel/core/error.h"
#include "gemel/dist/cluster.h"
#include "gemel/dist/watchdog.h"

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

std::unique_ptr<World> SingleWorld::split(int color, int) const {
  return color < 0 ? nullptr : std::make_unique<SingleWorld>();
}

namespace {

MPI_Comm commOf(int handle) { return MPI_Comm_f2c(handle); }

}  // namespace

MpiWorld::MpiWorld(const Cluster& cluster) {
  mpi_ = cluster.mpi();
  rank_ = cluster.rank();
  size_ = cluster.size();
  local_rank_ = cluster.localRank();
  local_size_ = cluster.localSize();
  if (mpi_) handle_ = MPI_Comm_c2f(MPI_COMM_WORLD);
}

MpiWorld::~MpiWorld() {
  if (!owned_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  MPI_Comm comm = commOf(handle_);
  MPI_Comm_free(&comm);  // (a failure here has nowhere to go: the group is gone either way)
}

std::unique_ptr<World> MpiWorld::split(int color, int key) const {
  if (!mpi_) return color < 0 ? nullptr : std::make_unique<SingleWorld>();
  CollectiveScope watch("MPI_Comm_split (rank group)");
  MPI_Comm group = MPI_COMM_NULL;
  // Ranked by key, then by rank in this world.
  GEMEL_MPI(MPI_Comm_split(commOf(handle_), color < 0 ? MPI_UNDEFINED : color, key * size_ + rank_,
                           &group));
  if (group == MPI_COMM_NULL) return nullptr;
  GEMEL_MPI(MPI_Comm_set_errhandler(group, MPI_ERRORS_RETURN));
  std::unique_ptr<MpiWorld> w(new MpiWorld());
  w->mpi_ = true;
  w->owned_ = true;
  w->handle_ = MPI_Comm_c2f(group);
  GEMEL_MPI(MPI_Comm_rank(group, &w->rank_));
  GEMEL_MPI(MPI_Comm_size(group, &w->size_));
  MPI_Comm local;
  GEMEL_MPI(MPI_Comm_split_type(group, MPI_COMM_TYPE_SHARED, w->rank_, MPI_INFO_NULL, &local));
  GEMEL_MPI(MPI_Comm_rank(local, &w->local_rank_));
  GEMEL_MPI(MPI_Comm_size(local, &w->local_size_));
  GEMEL_MPI(MPI_Comm_free(&local));
  return w;
}

std::string MpiWorld::share(std::string text, int root) const {
  if (!mpi_ || size_ == 1) return text;
  CollectiveScope watch("MPI_Bcast (control plane)");
  const MPI_Comm comm = commOf(handle_);
  int64_t n = static_cast<int64_t>(text.size());
  GEMEL_MPI(MPI_Bcast(&n, 1, MPI_INT64_T, root, comm));
  text.resize(static_cast<std::size_t>(n));
  if (n > 0) GEMEL_MPI(MPI_Bcast(text.data(), static_cast<int>(n), MPI_CHAR, root, comm));
  return text;
}

void MpiWorld::sum(std::vector<int64_t>& values) const {
  if (!mpi_ || size_ == 1 || values.empty()) return;
  CollectiveScope watch("MPI_Allreduce (control plane sum)");
  GEMEL_MPI(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_INT64_T,
                          MPI_SUM, commOf(handle_)));
}

int64_t MpiWorld::max(int64_t value) const {
  if (!mpi_ || size_ == 1) return value;
  CollectiveScope watch("MPI_Allreduce (control plane max)");
  GEMEL_MPI(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT64_T, MPI_MAX, commOf(handle_)));
  return value;
}

void MpiWorld::send(const std::vector<char>& bytes, int dest, int tag) const {
  GEMEL_ASSERT(mpi_, "send without MPI");
  const std::vector<int> peers{rank_, dest};
  CollectiveScope watch("MPI_Send (weights)", owned_ ? nullptr : &peers);
  const MPI_Comm comm = commOf(handle_);
  int64_t n = static_cast<int64_t>(bytes.size());
  GEMEL_MPI(MPI_Send(&n, 1, MPI_INT64_T, dest, tag, comm));
  // In pieces below 2 GiB (MPI counts are int).
  constexpr int64_t kPiece = int64_t(1) << 30;
  for (int64_t off = 0; off < n; off += kPiece) {
    const int count = static_cast<int>(std::min(kPiece, n - off));
    GEMEL_MPI(MPI_Send(bytes.data() + off, count, MPI_CHAR, dest, tag, comm));
  }
}

std::vector<char> MpiWorld::receive(int source, int tag) const {
  GEMEL_ASSERT(mpi_, "receive without MPI");
  const std::vector<int> peers{rank_, source};
  CollectiveScope watch("MPI_Recv (weights)", owned_ ? nullptr : &peers);
  const MPI_Comm comm = commOf(handle_);
  int64_t n = 0;
  GEMEL_MPI(MPI_Recv(&n, 1, MPI_INT64_T, source, tag, comm, MPI_STATUS_IGNORE));
  std::vector<char> bytes(static_cast<std::size_t>(n));
  constexpr int64_t kPiece = int64_t(1) << 30;
  for (int64_t off = 0; off < n; off += kPiece) {
    const int count = static_cast<int>(std::min(kPiece, n - off));
    GEMEL_MPI(MPI_Recv(bytes.data() + off, count, MPI_CHAR, source, tag, comm, MPI_STATUS_IGNORE));
  }
  return bytes;
}

}  // namespace gemel::dist
