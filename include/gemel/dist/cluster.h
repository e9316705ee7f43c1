#pragma once
// Cluster: the MPI world this process belongs to, and the control-plane messages the merge
// needs (broadcasts of trials and decisions, sums of accuracy counts, shipping weights to rank
// 0). Only the dist module calls MPI. Without a launcher (mpirun, srun) the process is rank 0
// of 1 and MPI is never initialised, so a laptop run needs no MPI runtime at all.
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

  void barrier() const;
  // Every rank gets root's string.
  void broadcast(std::string& text, int root) const;
  // Element-wise sums / maxima over all ranks, in place.
  void sumInPlace(std::vector<int64_t>& values) const;
  int64_t max(int64_t value) const;
  // Point-to-point byte messages (weights shipped to rank 0).
  void send(const std::vector<char>& bytes, int dest, int tag) const;
  std::vector<char> receive(int source, int tag) const;

 private:
  Cluster() = default;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  bool mpi_ = false;
};

// True when the environment says an MPI launcher started this process.
bool launchedByMpi();

}  // namespace gemel::dist
