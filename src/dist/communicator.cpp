#include "gemel/dist/communicator.h"
#include "gemel/features.h"

#include <torch/torch.h>

#include <algorithm>

#include "gemel/core/error.h"
#include "gemel/dist/world.h"
#include "mpi_communicator.h"
#include "single_communicator.h"
#ifdef GEMEL_HAVE_NCCL
#include "nccl_communicator.h"
#endif

namespace gemel::dist {

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

Backend resolveBackend(Backend requested, const torch::Device& device, const World& world) {
  if (world.size() < 2) return Backend::kSingle;
  if (requested == Backend::kSingle) {
    throw UsageError("--backend single runs one process; this job has " +
                     std::to_string(world.size()) + " ranks");
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
      device.is_cuda() && world.localSize() <= static_cast<int>(torch::cuda::device_count());
  return haveNccl() && own_gpu ? Backend::kNccl : Backend::kMpi;
}

CommunicatorCache::CommunicatorCache(const World& world, Backend backend, torch::Device device)
    : world_(world), backend_(backend), device_(device) {}
CommunicatorCache::~CommunicatorCache() = default;

void CommunicatorCache::prepare(const std::vector<std::vector<int>>& rank_sets) {
  for (const auto& set : rank_sets) {
    if (comms_.count(set) || set.size() < 2) continue;
    if (backend_ == Backend::kSingle) {
      comms_[set] = std::make_unique<SingleCommunicator>();
      continue;
    }
    MPI_Comm comm = splitWorld(world_, set);
    if (comm == MPI_COMM_NULL) {
      comms_[set] = nullptr;
      continue;
    }
#ifdef GEMEL_HAVE_NCCL
    if (backend_ == Backend::kNccl) {
      comms_[set] = makeNcclCommunicator(comm, device_);
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
