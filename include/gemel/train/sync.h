#pragma once
// RankSync: what the trainer needs from the other ranks of a job, and nothing more. Every rank
// makes the same calls in the same order. LocalSync is one process: every call returns its
// input. The merge's implementation (merge/trial_runner.cpp) agrees over a dist::World and
// all-reduces gradients with GradSync; tests wrap it (a fault at step N, thread ranks).
#include <cstdint>
#include <memory>
#include <vector>

#include <torch/types.h>

#include "gemel/dist/world.h"

namespace gemel::dist {
class GradSync;
}

namespace gemel::train {

class RankSync {
 public:
  virtual ~RankSync() = default;
  // Element-wise sums over every rank, in place.
  virtual void sum(std::vector<int64_t>& values) = 0;
  // Every rank's values one after another, in rank order, on every rank (in place).
  virtual void concat(std::vector<int64_t>& values) = 0;
  virtual int64_t max(int64_t value) = 0;
  // Once per step, after the backward: the gradients of `params` made equal on every rank
  // that holds them (summed; the losses carry each replica's share). Every implementation says
  // what it does here: there is no default that would silently leave replicas apart.
  virtual void reduceGradients(const std::vector<torch::Tensor>& params) = 0;
  // Before each validation: floating-point buffers (BatchNorm statistics) of replicated
  // tasks averaged over their replicas.
  virtual void syncBuffers() = 0;

  // The one-process instance (LocalSync).
  static RankSync& local();
};

// One process: no other rank exists, so every call returns its input and no gradient or
// buffer is held anywhere else.
class LocalSync final : public RankSync {
 public:
  void sum(std::vector<int64_t>&) override {}
  void concat(std::vector<int64_t>&) override {}
  int64_t max(int64_t value) override { return value; }
  void reduceGradients(const std::vector<torch::Tensor>&) override {}  // held here only
  void syncBuffers() override {}
};

// A RankSync that passes every call on to another: derive from it to watch or alter one call
// (tests: a fault at step N, a record of the gradients).
class ForwardingSync : public RankSync {
 public:
  explicit ForwardingSync(RankSync& inner) : inner_(inner) {}
  void sum(std::vector<int64_t>& values) override { inner_.sum(values); }
  void concat(std::vector<int64_t>& values) override { inner_.concat(values); }
  int64_t max(int64_t value) override { return inner_.max(value); }
  void reduceGradients(const std::vector<torch::Tensor>& params) override {
    inner_.reduceGradients(params);
  }
  void syncBuffers() override { inner_.syncBuffers(); }

 private:
  RankSync& inner_;
};

// RankSync over a dist::World: counts and decisions through the World, gradients and buffers
// through GradSync (either may be null: nothing of that kind is held on several ranks).
class WorldSync final : public RankSync {
 public:
  // `grads`, `buffers`: null only when no tensor of that kind is held on two ranks (said by
  // the caller: there is no default).
  WorldSync(const dist::World& world, std::unique_ptr<dist::GradSync> grads,
            std::unique_ptr<dist::GradSync> buffers);
  ~WorldSync() override;
  void sum(std::vector<int64_t>& values) override { world_.sum(values); }
  void concat(std::vector<int64_t>& values) override { world_.concat(values); }
  int64_t max(int64_t value) override { return world_.max(value); }
  void reduceGradients(const std::vector<torch::Tensor>& params) override;
  void syncBuffers() override;

 private:
  const dist::World& world_;
  std::unique_ptr<dist::GradSync> grads_, buffers_;
};

}  // namespace gemel::train
