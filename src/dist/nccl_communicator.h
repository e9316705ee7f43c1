#pragma once
// Internal to dist: collectives over NCCL, for CUDA tensors, one rank per GPU; the NCCL id is
// shared over MPI. Compiled when LibTorch has CUDA and NCCL is found (GEMEL_HAVE_NCCL).
#include <memory>

#include "gemel/dist/communicator.h"
#include "mpi_check.h"

namespace gemel::dist {

// Takes `mpi` (the same ranks; it carries the NCCL id from its rank 0, and is freed).
std::unique_ptr<Communicator> makeNcclCommunicator(MPI_Comm mpi, const torch::Device& device);

}  // namespace gemel::dist
