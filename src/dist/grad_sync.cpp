#include "gemel/dist/grad_sync.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>

#include "gemel/core/error.h"

namespace gemel::dist {

GradSync::GradSync(const CommunicatorCache& cache, std::vector<SyncEntry> entries,
                   int64_t bucket_bytes, bool views) {
  // Same order on every rank of a set: grouped by (rank set, dtype, device), keys sorted within.
  std::sort(entries.begin(), entries.end(), [](const SyncEntry& a, const SyncEntry& b) {
    return std::tie(a.ranks, a.key) < std::tie(b.ranks, b.key);
  });
  std::map<std::tuple<std::vector<int>, int, std::string>, std::vector<const SyncEntry*>> sets;
  for (const auto& e : entries) {
    GEMEL_ASSERT(e.ranks.size() >= 2, "a synced tensor needs two or more ranks");
    sets[{e.ranks, static_cast<int>(e.tensor.scalar_type()), e.tensor.device().str()}].push_back(
        &e);
  }
  for (const auto& [key, list] : sets) {
    auto* comm = cache.get(std::get<0>(key));
    GEMEL_ASSERT(comm != nullptr, "no communicator for a rank set this rank belongs to");
    Bucket bucket;
    int64_t size = 0;
    for (const auto* e : list) {
      const int64_t b = e->tensor.numel() * static_cast<int64_t>(e->tensor.element_size());
      if (!bucket.tensors.empty() && size + b > bucket_bytes) {
        buckets_.push_back(std::move(bucket));
        bucket = Bucket();
        size = 0;
      }
      bucket.comm = comm;
      bucket.ranks = static_cast<int>(std::get<0>(key).size());
      bucket.tensors.push_back(e->tensor);
      size += b;
      bytes_ += b;
    }
    if (!bucket.tensors.empty()) buckets_.push_back(std::move(bucket));
  }
  for (auto& b : buckets_) {
    int64_t n = 0;
    for (const auto& t : b.tensors) n += t.numel();
    b.flat = torch::zeros({n}, b.tensors[0].options().requires_grad(false));
    if (!views) continue;
    // Gradients as views into the bucket (as DDP does): backward accumulates straight into the
    // buffer that is reduced, so a step copies nothing.
    int64_t at = 0;
    torch::NoGradGuard no_grad;
    for (auto& t : b.tensors) {
      if (t.requires_grad()) t.mutable_grad() = b.flat.narrow(0, at, t.numel()).view_as(t);
      at += t.numel();
    }
  }
}

void GradSync::run(bool gradients) {
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    if (!gradients && !torch::isFloatingType(b.tensors[0].scalar_type())) continue;
    auto& flat = b.flat;
    // Gradients still viewing the bucket need no copies in or out.
    bool viewing = gradients;
    int64_t at = 0;
    for (auto& t : b.tensors) {
      viewing = viewing && t.grad().defined() &&
                t.grad().data_ptr() == static_cast<void*>(static_cast<char*>(flat.data_ptr()) +
                                                          at * flat.element_size());
      at += t.numel();
    }
    if (viewing) {
      b.comm->allreduceSum(flat);
      continue;
    }
    at = 0;
    for (auto& t : b.tensors) {
      if (gradients && !t.grad().defined()) t.mutable_grad() = torch::zeros_like(t);
      const auto& src = gradients ? t.grad() : t;
      flat.narrow(0, at, src.numel()).copy_(src.reshape({-1}));
      at += src.numel();
    }
    b.comm->allreduceSum(flat);
    if (!gradients) flat.div_(b.ranks);
    int64_t offset = 0;
    for (auto& t : b.tensors) {
      auto& dst = gradients ? t.mutable_grad() : t;
      const int64_t n = dst.numel();
      dst.copy_(flat.narrow(0, offset, n).view_as(dst));
      offset += n;
    }
  }
}

void GradSync::reduceGradients() { run(true); }
void GradSync::averageValues() { run(false); }

}  // namespace gemel::dist
