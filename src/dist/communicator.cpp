#include "gemel/dist/communicator.h"

#include "mpi_check.h"
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>
#endif

#include <torch/torch.h>

#include <algorithm>
#include <climits>

#include "gemel/core/error.h"
#include "gemel/dist/cluster.h"
#include "gemel/dist/watchdog.h"

#ifdef GEMEL_HAVE_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <nccl.h>
#endif

namespace gemel::dist {
namespace {

// The tensor types the communicators move, each with its MPI and NCCL names: one table.
struct WireType {
  torch::ScalarType torch;
  MPI_Datatype mpi;
#ifdef GEMEL_HAVE_NCCL
  ncclDataType_t nccl;
#endif
};

#ifdef GEMEL_HAVE_NCCL
#define GEMEL_WIRE(t, m, n) \
  { t, m, n }
#else
#define GEMEL_WIRE(t, m, n) \
  { t, m }
#endif

const WireType& wireType(const torch::Tensor& t) {
  static const WireType table[] = {
      GEMEL_WIRE(torch::kFloat, MPI_FLOAT, ncclFloat32),
      GEMEL_WIRE(torch::kDouble, MPI_DOUBLE, ncclFloat64),
      GEMEL_WIRE(torch::kLong, MPI_INT64_T, ncclInt64),
      GEMEL_WIRE(torch::kInt, MPI_INT32_T, ncclInt32),
  };
  for (const auto& w : table) {
    if (w.torch == t.scalar_type()) return w;
  }
  throw Error(format("communicator: unsupported tensor type {}",
                     std::string(c10::toString(t.scalar_type()))),
              ExitCode::kInternal);
}
#undef GEMEL_WIRE

MPI_Datatype mpiType(const torch::Tensor& t) { return wireType(t).mpi; }

bool mpiCudaAware() {
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
  return MPIX_Query_cuda_support() == 1;
#else
  return false;
#endif
}

class SingleCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "single"; }
  void allreduceSum(torch::Tensor&) override {}
  void broadcast(torch::Tensor&, int) override {}
};

class MpiCommunicator final : public Communicator {
 public:
  // world_ranks: the ranks of `comm` in MPI_COMM_WORLD (what the watchdog names).
  MpiCommunicator(MPI_Comm comm, std::vector<int> world_ranks)
      : comm_(comm), world_ranks_(std::move(world_ranks)) {
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    cuda_aware_ = mpiCudaAware();
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return cuda_aware_ ? "mpi (CUDA-aware)" : "mpi"; }

  void allreduceSum(torch::Tensor& t) override {
    CollectiveScope watch("MPI_Allreduce (gradients)", &world_ranks_);
    run(t, [&](void* data, int count, MPI_Datatype type) {
      check(MPI_Allreduce(MPI_IN_PLACE, data, count, type, MPI_SUM, comm_), "MPI_Allreduce");
    });
  }
  void broadcast(torch::Tensor& t, int root) override {
    CollectiveScope watch("MPI_Bcast (weights)", &world_ranks_);
    run(t, [&](void* data, int count, MPI_Datatype type) {
      check(MPI_Bcast(data, count, type, root, comm_), "MPI_Bcast");
    });
  }

 private:
  // Hands MPI host memory (or device memory when CUDA-aware), in pieces below INT_MAX elements.
  template <typename Op>
  void run(torch::Tensor& t, Op op) {
    if (!t.is_contiguous()) {  // channels_last weights: through a contiguous copy
      auto c = t.contiguous();
      run(c, op);
      t.copy_(c);
      return;
    }
    torch::Tensor host = t;
    const bool staged = t.is_cuda() && !cuda_aware_;
    if (staged) host = t.to(torch::kCPU);
    if (t.is_cuda() && !staged) torch::cuda::synchronize();
    const auto type = mpiType(host);
    const int64_t n = host.numel();
    auto* base = static_cast<char*>(host.data_ptr());
    const int64_t piece = INT_MAX / 2;
    for (int64_t off = 0; off < n; off += piece) {
      op(base + off * host.element_size(), static_cast<int>(std::min(piece, n - off)), type);
    }
    if (staged) t.copy_(host);
  }
  MPI_Comm comm_;
  std::vector<int> world_ranks_;
  int rank_ = 0, size_ = 1;
  bool cuda_aware_ = false;
};

#ifdef GEMEL_HAVE_NCCL
void ncclCheck(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess) {
    throw CommError(format("{} failed on {}: {} (NCCL {}; NCCL_DEBUG=WARN says more)", what,
                           whichRank(), ncclGetErrorString(rc), static_cast<int>(rc)));
  }
}

ncclDataType_t ncclType(const torch::Tensor& t) { return wireType(t).nccl; }

class NcclCommunicator final : public Communicator {
 public:
  // `mpi` spans the same ranks; it carries the NCCL id from its rank 0. NCCL binds the
  // communicator to the current CUDA device, so that is made this rank's device first.
  NcclCommunicator(MPI_Comm mpi, const torch::Device& device) {
    GEMEL_ASSERT(device.is_cuda(), "the NCCL backend needs this rank's CUDA device");
    c10::cuda::set_device(device.has_index() ? device.index() : 0);
    MPI_Comm_rank(mpi, &rank_);
    MPI_Comm_size(mpi, &size_);
    ncclUniqueId id;
    if (rank_ == 0) ncclCheck(ncclGetUniqueId(&id), "ncclGetUniqueId");
    check(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, mpi), "MPI_Bcast (NCCL id)");
    ncclCheck(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
    MPI_Comm_free(&mpi);
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
#endif

}  // namespace

bool haveNccl() {
#ifdef GEMEL_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

Backend parseBackend(const std::string& name) {
  if (name == "auto") return Backend::kAuto;
  if (name == "mpi") return Backend::kMpi;
  if (name == "nccl") return Backend::kNccl;
  if (name == "single") return Backend::kSingle;
  throw UsageError("--backend '" + name + "': expected auto, mpi, nccl or single");
}

std::string toString(Backend b) {
  switch (b) {
    case Backend::kAuto:
      return "auto";
    case Backend::kMpi:
      return "mpi";
    case Backend::kNccl:
      return "nccl";
    case Backend::kSingle:
      return "single";
  }
  return "?";
}

Backend resolveBackend(Backend requested, const torch::Device& device) {
  const auto& c = Cluster::get();
  if (!c.distributed()) return Backend::kSingle;
  if (requested == Backend::kSingle) {
    throw UsageError("--backend single runs one process; this job has " + std::to_string(c.size()) +
                     " ranks");
  }
  if (requested == Backend::kNccl) {
    GEMEL_THROW_IF_NOT(haveNccl(), UsageError,
                       "--backend nccl: this gemel was built without NCCL; use --backend mpi");
    GEMEL_THROW_IF_NOT(device.is_cuda(), UsageError,
                       "--backend nccl needs CUDA devices; this rank trains on the CPU");
    return Backend::kNccl;
  }
  if (requested == Backend::kMpi) return Backend::kMpi;
  // auto: NCCL refuses two ranks on one GPU, so it needs a GPU per local rank.
  const bool own_gpu =
      device.is_cuda() && c.localSize() <= static_cast<int>(torch::cuda::device_count());
  return haveNccl() && own_gpu ? Backend::kNccl : Backend::kMpi;
}

double timeRawAllreduce(int64_t floats, int repeat, int64_t piece) {
  std::vector<float> buffer(static_cast<std::size_t>(floats), 1.0f);
  if (piece <= 0) piece = floats;
  auto once = [&] {
    for (int64_t at = 0; at < floats; at += piece) {
      check(MPI_Allreduce(MPI_IN_PLACE, buffer.data() + at,
                          static_cast<int>(std::min(piece, floats - at)), MPI_FLOAT, MPI_SUM,
                          MPI_COMM_WORLD),
            "MPI_Allreduce");
    }
  };
  once();
  check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
  const double start = MPI_Wtime();
  for (int i = 0; i < repeat; ++i) once();
  return (MPI_Wtime() - start) / repeat;
}

CommunicatorCache::CommunicatorCache(Backend backend, torch::Device device)
    : backend_(backend), device_(device) {}
CommunicatorCache::~CommunicatorCache() = default;

void CommunicatorCache::prepare(const std::vector<std::vector<int>>& rank_sets) {
  const auto& c = Cluster::get();
  for (const auto& set : rank_sets) {
    if (comms_.count(set) || set.size() < 2) continue;
    const bool member = std::binary_search(set.begin(), set.end(), c.rank());
    if (backend_ == Backend::kSingle) {
      comms_[set] = std::make_unique<SingleCommunicator>();
      continue;
    }
    MPI_Comm comm = MPI_COMM_NULL;
    CollectiveScope watch("MPI_Comm_split");
    check(MPI_Comm_split(MPI_COMM_WORLD, member ? 0 : MPI_UNDEFINED, c.rank(), &comm),
          "MPI_Comm_split");
    if (!member) {
      comms_[set] = nullptr;
      continue;
    }
#ifdef GEMEL_HAVE_NCCL
    if (backend_ == Backend::kNccl) {
      comms_[set] = std::make_unique<NcclCommunicator>(comm, device_);
      continue;
    }
#endif
    comms_[set] = std::make_unique<MpiCommunicator>(comm, set);
  }
}

void CommunicatorCache::adopt(const std::vector<int>& ranks, std::unique_ptr<Communicator> comm) {
  comms_[ranks] = std::move(comm);
}

Communicator* CommunicatorCache::get(const std::vector<int>& ranks) const {
  const auto it = comms_.find(ranks);
  return it == comms_.end() ? nullptr : it->second.get();
}

}  // namespace gemel::dist
