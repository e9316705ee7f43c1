#pragma once
// Internal to dist: collectives over MPI. CPU tensors directly; CUDA tensors directly when the
// MPI is CUDA-aware (MPIX_Query_cuda_support), else staged through host memory.
#include <vector>

#include "gemel/dist/communicator.h"
#include "mpi_check.h"

namespace gemel::dist {

// Collective over `world` (every one of its ranks calls it; an MpiWorld: the job or a rank
// group): a communicator of its ranks `ranks` (sorted), MPI_COMM_NULL on ranks outside them.
MPI_Comm splitWorld(const World& world, const std::vector<int>& ranks);

class MpiCommunicator final : public Communicator {
 public:
  // Takes `comm`; world_ranks: its ranks in MPI_COMM_WORLD (what the watchdog names).
  MpiCommunicator(MPI_Comm comm, std::vector<int> world_ranks);
  ~MpiCommunicator() override;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override;
  void allreduceSum(torch::Tensor& tensor) override;
  void broadcast(torch::Tensor& tensor, int root) override;

 private:
  // Hands MPI host memory (or device memory when CUDA-aware), in pieces below INT_MAX elements.
  template <typename Op>
  void run(torch::Tensor& t, Op op);
  MPI_Comm comm_;
  std::vector<int> world_ranks_;
  int rank_ = 0, size_ = 1;
  bool cuda_aware_ = false;
};

}  // namespace gemel::dist
