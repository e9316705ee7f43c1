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

}  // namespace gemel::dist
