#include "mpi_communicator.h"

#include "gemel/dist/world.h"

#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>
#endif

#include <torch/torch.h>

#include <algorithm>
#include <climits>

#include "gemel/core/error.h"
#include "gemel/core/log.h"
#include "gemel/dist/watchdog.h"

namespace gemel::dist {
namespace {

MPI_Datatype mpiType(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat:
      return MPI_FLOAT;
    case torch::kDouble:
      return MPI_DOUBLE;
    case torch::kLong:
      return MPI_INT64_T;
    case torch::kInt:
      return MPI_INT32_T;
    default:
      throw Error(format("MPI communicator: unsupported tensor type {}",
                         std::string(c10::toString(t.scalar_type()))),
                  ExitCode::kInternal);
  }
}

bool mpiCudaAware() {
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
  return MPIX_Query_cuda_support() == 1;
#else
  return false;
#endif
}

}  // namespace

MPI_Comm splitWorld(const World& world, const std::vector<int>& ranks) {
  // From the World's own communicator, never MPI_COMM_WORLD behind its back: a rank group's
  // gradients stay within the group.
  const auto* mpi = dynamic_cast<const MpiWorld*>(&world);
  GEMEL_ASSERT(mpi != nullptr, "an MPI communicator needs an MpiWorld; this World is another kind");
  const bool member = std::binary_search(ranks.begin(), ranks.end(), world.rank());
  MPI_Comm comm = MPI_COMM_NULL;
  CollectiveScope watch("MPI_Comm_split");
  GEMEL_MPI(MPI_Comm_split(MPI_Comm_f2c(mpi->fortranHandle()), member ? 0 : MPI_UNDEFINED,
                           world.rank(), &comm));
  return comm;
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, std::vector<int> world_ranks)
    : comm_(comm), world_ranks_(std::move(world_ranks)) {
  GEMEL_MPI(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  GEMEL_MPI(MPI_Comm_rank(comm_, &rank_));
  GEMEL_MPI(MPI_Comm_size(comm_, &size_));
  cuda_aware_ = mpiCudaAware();
}

MpiCommunicator::~MpiCommunicator() {
  try {
    int finalized = 0;
    GEMEL_MPI(MPI_Finalized(&finalized));
    if (!finalized) GEMEL_MPI(MPI_Comm_free(&comm_));
  } catch (const Error& e) {
    log::warn("dist", "{}", e.what());
  }
}

std::string MpiCommunicator::backend() const { return cuda_aware_ ? "mpi (CUDA-aware)" : "mpi"; }

template <typename Op>
void MpiCommunicator::run(torch::Tensor& t, Op op) {
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

void MpiCommunicator::allreduceSum(torch::Tensor& t) {
  CollectiveScope watch("MPI_Allreduce (gradients)", &world_ranks_);
  run(t, [&](void* data, int count, MPI_Datatype type) {
    GEMEL_MPI(MPI_Allreduce(MPI_IN_PLACE, data, count, type, MPI_SUM, comm_));
  });
}

void MpiCommunicator::broadcast(torch::Tensor& t, int root) {
  CollectiveScope watch("MPI_Bcast (weights)", &world_ranks_);
  run(t, [&](void* data, int count, MPI_Datatype type) {
    GEMEL_MPI(MPI_Bcast(data, count, type, root, comm_));
  });
}

double timeRawAllreduce(int64_t floats, int repeat, int64_t piece) {
  std::vector<float> buffer(static_cast<std::size_t>(floats), 1.0f);
  if (piece <= 0) piece = floats;
  auto once = [&] {
    for (int64_t at = 0; at < floats; at += piece) {
      GEMEL_MPI(MPI_Allreduce(MPI_IN_PLACE, buffer.data() + at,
                              static_cast<int>(std::min(piece, floats - at)), MPI_FLOAT, MPI_SUM,
                              MPI_COMM_WORLD));
    }
  };
  once();
  GEMEL_MPI(MPI_Barrier(MPI_COMM_WORLD));
  const double start = MPI_Wtime();
  for (int i = 0; i < repeat; ++i) once();
  return (MPI_Wtime() - start) / repeat;
}

}  // namespace gemel::dist
