#pragma once
// Communicators: collective operations on tensors among a set of ranks. Backends:
//   mpi     CPU tensors directly; CUDA tensors directly when the MPI is CUDA-aware
//           (MPIX_Query_cuda_support), else staged through host memory.
//   nccl    CUDA tensors, one rank per GPU; the NCCL id is shared over MPI. Built only when
//           LibTorch has CUDA and NCCL is found.
//   single  one process: every collective is the identity.
// Only this module calls MPI or NCCL; each backend is one file pair in src/dist.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace gemel::dist {

class World;

enum class Backend { kAuto, kMpi, kNccl, kSingle };
Backend parseBackend(const std::string& name);  // auto | mpi | nccl | single; UsageError
std::string toString(Backend backend);
// auto: nccl for CUDA devices when built with NCCL and each rank has its own GPU, else mpi
// (single when the world has one rank).
Backend resolveBackend(Backend requested, const torch::Device& device, const World& world);
bool haveNccl();

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;  // within this communicator
  virtual int size() const = 0;
  virtual std::string backend() const = 0;
  // In place. A tensor that is not contiguous (channels_last) goes through a contiguous copy.
  virtual void allreduceSum(torch::Tensor& tensor) = 0;
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;  // root: rank in this communicator
};

// Communicators per set of world ranks, created collectively: every rank calls prepare() with
// the same sets in the same order (the merge derives them from the plan and the placement,
// which all ranks know). get() returns nullptr on ranks outside the set.
class CommunicatorCache {
 public:
  // `world` names this rank (and must outlive the cache).
  CommunicatorCache(const World& world, Backend backend, torch::Device device);
  ~CommunicatorCache();
  void prepare(const std::vector<std::vector<int>>& rank_sets);
  // Takes a communicator made elsewhere for one rank set: in-process ranks (the tests' threads).
  void adopt(const std::vector<int>& ranks, std::unique_ptr<Communicator> comm);
  Communicator* get(const std::vector<int>& ranks) const;
  Backend backend() const { return backend_; }

 private:
  const World& world_;
  Backend backend_;
  torch::Device device_;
  std::map<std::vector<int>, std::unique_ptr<Communicator>> comms_;
};

// Seconds per MPI_Allreduce (sum, in place) of `floats` float32 values over the whole world,
// averaged over `repeat` calls after one warm-up: the yardstick for GradSync's bandwidth.
// piece > 0: as consecutive calls of at most `piece` values each.
double timeRawAllreduce(int64_t floats, int repeat, int64_t piece = 0);

}  // namespace gemel::dist
