#pragma once
// Cluster: the MPI job this process belongs to: MPI's start and end, this process's rank, and
// ending the whole job after a fatal error. Its messages (broadcasts of trials and decisions,
// sums of accuracy counts, weights shipped to rank 0) are MpiWorld's (world.h), over the job
// or a group of its ranks. Only the dist module calls MPI. Without a launcher (mpirun, srun) the
// process is rank 0 of 1 and MPI is never initialised, so a laptop run needs no MPI runtime at all.
#include <cstdint>
#include <string>
#include <vector>

namespace gemel::dist {

class Cluster {
 public:
  // Initialises MPI when the process was started by an MPI launcher; idempotent. Returns the
  // process-wide instance.
  static Cluster& init();
  // The instance (rank 0 of 1 when init() was never called).
  static Cluster& get();
  // Finalises MPI (at the end of main). Safe to call when MPI was never initialised.
  static void finalize();
  // After a fatal error on this rank: ends the whole job (MPI_Abort) when it spans several
  // processes, so that no rank waits forever on this one. Returns when single-process.
  static void abortJob(int exit_code);

  int rank() const { return rank_; }
  int size() const { return size_; }
  int localRank() const { return local_rank_; }
  int localSize() const { return local_size_; }
  bool distributed() const { return size_ > 1; }

  bool mpi() const { return mpi_; }  // MPI initialised (started by a launcher)

 private:
  Cluster() = default;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  bool mpi_ = false;
};

// True when the environment says an MPI launcher started this process.
bool launchedByMpi();

}  // namespace gemel::dist
