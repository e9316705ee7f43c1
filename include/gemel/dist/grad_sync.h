#pragma once
// GradSync: after backward, every tensor that lives on several ranks (a layer shared by tasks
// on different ranks, or any parameter of a replicated task) has its gradient summed over
// exactly the ranks that hold it: one communicator per distinct rank set, gradients fused into
// buckets (one flat buffer per bucket, one collective each). Tasks scale their losses before
// backward (1/replicas for a replica), so a plain sum gives "replicas averaged, tasks summed".
#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "gemel/dist/communicator.h"

namespace gemel::dist {

struct SyncEntry {
  std::string key;         // the same on every rank that holds the tensor
  torch::Tensor tensor;    // a parameter (gradients reduced) or a buffer (values averaged)
  std::vector<int> ranks;  // ascending world ranks holding it (two or more)
};

class GradSync {
 public:
  // views: make each parameter's .grad a view into its bucket (gradients only), so that backward
  // writes the buffer the collective reduces. Gradients must then be zeroed in place, not reset.
  GradSync(const CommunicatorCache& cache, std::vector<SyncEntry> entries,
           int64_t bucket_bytes = int64_t(25) << 20, bool views = false);
  // Sums each entry's .grad over its ranks (an undefined gradient counts as zeros).
  void reduceGradients();
  // Replaces each entry's values by their mean over its ranks (BatchNorm statistics of
  // replicas); integer tensors are left alone.
  void averageValues();
  int64_t bytes() const { return bytes_; }  // per reduceGradients() call, on this rank
  std::size_t buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    Communicator* comm = nullptr;
    int ranks = 0;
    std::vector<torch::Tensor> tensors;
    torch::Tensor flat;  // allocated once: no allocation (or page faults) per step
  };
  void run(bool gradients);
  std::vector<Bucket> buckets_;
  int64_t bytes_ = 0;
};

}  // namespace gemel::dist
