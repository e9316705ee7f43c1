#include "nccl_communicator.h"

#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <nccl.h>
#include <torch/torch.h>

#include "gemel/core/error.h"

namespace gemel::dist {
namespace {

void ncclCheck(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess) {
    throw CommError(format("{} failed on {}: {} (NCCL {}; NCCL_DEBUG=WARN says more)", what,
                           whereThisRankIs(), ncclGetErrorString(rc), static_cast<int>(rc)));
  }
}

ncclDataType_t ncclType(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat:
      return ncclFloat32;
    case torch::kDouble:
      return ncclFloat64;
    case torch::kLong:
      return ncclInt64;
    case torch::kInt:
      return ncclInt32;
    default:
      throw Error(format("NCCL communicator: unsupported tensor type {}",
                         std::string(c10::toString(t.scalar_type()))),
                  ExitCode::kInternal);
  }
}

class NcclCommunicator final : public Communicator {
 public:
  // NCCL binds the communicator to the current CUDA device, so that is made this rank's
  // device first.
  NcclCommunicator(MPI_Comm mpi, const torch::Device& device) {
    GEMEL_ASSERT(device.is_cuda(), "the NCCL backend needs this rank's CUDA device");
    c10::cuda::set_device(device.has_index() ? device.index() : 0);
    GEMEL_MPI(MPI_Comm_rank(mpi, &rank_));
    GEMEL_MPI(MPI_Comm_size(mpi, &size_));
    ncclUniqueId id;
    if (rank_ == 0) ncclCheck(ncclGetUniqueId(&id), "ncclGetUniqueId");
    GEMEL_MPI(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, mpi));
    ncclCheck(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
    GEMEL_MPI(MPI_Comm_free(&mpi));
  }
  ~NcclCommunicator() override { ncclCommDestroy(comm_); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }
  void allreduceSum(torch::Tensor& t) override {
    GEMEL_ASSERT(t.is_cuda(), "NCCL needs CUDA tensors");
    if (!t.is_contiguous()) {  // channels_last weights: through a contiguous copy
      auto c = t.contiguous();
      allreduceSum(c);
      t.copy_(c);
      return;
    }
    auto stream = c10::cuda::getCurrentCUDAStream(t.device().index());
    ncclCheck(ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), ncclType(t), ncclSum, comm_,
                            stream.stream()),
              "ncclAllReduce");
  }
  void broadcast(torch::Tensor& t, int root) override {
    GEMEL_ASSERT(t.is_cuda(), "NCCL needs CUDA tensors");
    if (!t.is_contiguous()) {
      auto c = t.contiguous();
      broadcast(c, root);
      t.copy_(c);
      return;
    }
    auto stream = c10::cuda::getCurrentCUDAStream(t.device().index());
    ncclCheck(ncclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(), ncclType(t), root, comm_,
                            stream.stream()),
              "ncclBroadcast");
  }

 private:
  ncclComm_t comm_ = nullptr;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> makeNcclCommunicator(MPI_Comm mpi, const torch::Device& device) {
  return std::make_unique<NcclCommunicator>(mpi, device);
}

}  // namespace gemel::dist
