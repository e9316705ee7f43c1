#include "gemel/dist/cluster.h"

#include "mpi_check.h"

#include <cstdio>
#include <cstdlib>

#include "gemel/core/error.h"
#include "gemel/core/log.h"
#include "gemel/dist/watchdog.h"

namespace gemel::dist {
namespace {

Cluster* instance = nullptr;

}  // namespace

bool launchedByMpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"}) {
    if (std::getenv(v)) return true;
  }
  return false;
}

Cluster& Cluster::get() {
  if (!instance) instance = new Cluster();
  return *instance;
}

Cluster& Cluster::init() {
  auto& c = get();
  if (c.mpi_ || !launchedByMpi()) return c;
  int initialised = 0;
  GEMEL_MPI(MPI_Initialized(&initialised));
  if (!initialised) {
    int provided = 0;
    GEMEL_MPI(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
  }
  // Errors come back as codes (and become exceptions) instead of aborting inside MPI.
  GEMEL_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  c.mpi_ = true;
  GEMEL_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &c.rank_));
  GEMEL_MPI(MPI_Comm_size(MPI_COMM_WORLD, &c.size_));
  MPI_Comm local;
  GEMEL_MPI(
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c.rank_, MPI_INFO_NULL, &local));
  GEMEL_MPI(MPI_Comm_rank(local, &c.local_rank_));
  GEMEL_MPI(MPI_Comm_size(local, &c.local_size_));
  GEMEL_MPI(MPI_Comm_free(&local));
  log::setRank(c.rank_, c.size_);
  return c;
}

void Cluster::finalize() {
  auto& c = get();
  if (!c.mpi_) return;
  int finalized = 0;
  GEMEL_MPI(MPI_Finalized(&finalized));
  if (!finalized) GEMEL_MPI(MPI_Finalize());
  c.mpi_ = false;
}

void Cluster::abortJob(int exit_code) {
  auto& c = get();
  // MPI_Abort does not return on success; a failure has nowhere to go but this message.
  if (c.mpi_ && c.size_ > 1 &&
      MPI_Abort(MPI_COMM_WORLD, exit_code == 0 ? 1 : exit_code) != MPI_SUCCESS)
    std::fprintf(stderr, "MPI_Abort failed on %s\n", whereThisRankIs().c_str());
}

void Cluster::barrier() const {
  if (!mpi_) return;
  CollectiveScope watch("MPI_Barrier");
  GEMEL_MPI(MPI_Barrier(MPI_COMM_WORLD));
}

void Cluster::broadcast(std::string& text, int root) const {
  if (!mpi_ || size_ == 1) return;
  CollectiveScope watch("MPI_Bcast (control plane)");
  int64_t n = static_cast<int64_t>(text.size());
  GEMEL_MPI(MPI_Bcast(&n, 1, MPI_INT64_T, root, MPI_COMM_WORLD));
  text.resize(static_cast<std::size_t>(n));
  if (n > 0) GEMEL_MPI(MPI_Bcast(text.data(), static_cast<int>(n), MPI_CHAR, root, MPI_COMM_WORLD));
}

void Cluster::sumInPlace(std::vector<int64_t>& values) const {
  if (!mpi_ || size_ == 1 || values.empty()) return;
  CollectiveScope watch("MPI_Allreduce (control plane sum)");
  GEMEL_MPI(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_INT64_T,
                          MPI_SUM, MPI_COMM_WORLD));
}

int64_t Cluster::max(int64_t value) const {
  if (!mpi_ || size_ == 1) return value;
  CollectiveScope watch("MPI_Allreduce (control plane max)");
  GEMEL_MPI(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD));
  return value;
}

void Cluster::send(const std::vector<char>& bytes, int dest, int tag) const {
  GEMEL_ASSERT(mpi_, "send without MPI");
  const std::vector<int> peers{rank_, dest};
  CollectiveScope watch("MPI_Send (weights)", &peers);
  int64_t n = static_cast<int64_t>(bytes.size());
  GEMEL_MPI(MPI_Send(&n, 1, MPI_INT64_T, dest, tag, MPI_COMM_WORLD));
  // In pieces below 2 GiB (MPI counts are int).
  constexpr int64_t kPiece = int64_t(1) << 30;
  for (int64_t off = 0; off < n; off += kPiece) {
    const int count = static_cast<int>(std::min(kPiece, n - off));
    GEMEL_MPI(MPI_Send(bytes.data() + off, count, MPI_CHAR, dest, tag, MPI_COMM_WORLD));
  }
}

std::vector<char> Cluster::receive(int source, int tag) const {
  GEMEL_ASSERT(mpi_, "receive without MPI");
  const std::vector<int> peers{rank_, source};
  CollectiveScope watch("MPI_Recv (weights)", &peers);
  int64_t n = 0;
  GEMEL_MPI(MPI_Recv(&n, 1, MPI_INT64_T, source, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
  std::vector<char> bytes(static_cast<std::size_t>(n));
  constexpr int64_t kPiece = int64_t(1) << 30;
  for (int64_t off = 0; off < n; off += kPiece) {
    const int count = static_cast<int>(std::min(kPiece, n - off));
    GEMEL_MPI(MPI_Recv(bytes.data() + off, count, MPI_CHAR, source, tag, MPI_COMM_WORLD,
                       MPI_STATUS_IGNORE));
  }
  return bytes;
}

}  // namespace gemel::dist
