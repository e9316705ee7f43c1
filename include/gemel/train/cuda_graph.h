#pragma once
// CUDA graphs for a training step whose shapes do not change: the step is captured once (its
// kernels recorded, not run) and then replayed with one launch. PyTorch's whole-network recipe:
// warm-up steps on a side stream first (cuBLAS and cuDNN workspaces, every gradient, the
// optimizer's state come into being), then the capture on that stream; the captured work and
// its memory live in the graph's own pool at fixed addresses, so inputs are static tensors that
// the caller refills before each replay. The code compiles everywhere; graphs run only on CUDA
// (cudaGraphsAvailable()).
#include <functional>
#include <memory>

#include <torch/types.h>

namespace gemel::train {

// Whether this build can capture CUDA graphs (LibTorch with CUDA, and a device present).
bool cudaGraphsAvailable();

// While alive, the current stream of a CUDA `device` is a side stream (captures need a stream
// other than the default one). It first waits for the work queued before it, and the work
// queued after it waits for it. On the CPU: nothing.
class SideStream {
 public:
  explicit SideStream(const torch::Device& device);
  ~SideStream();
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;
  // Moves on to a fresh side stream, after the current one's work (after a failed capture:
  // the allocator may still route the old stream's allocations into that graph's pool).
  void renew();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One step, captured on the current stream (a SideStream, after warm-up steps on it).
// `body` runs the step on static tensors and returns its loss; the capture records it without
// running it, so the step it was captured at still has to be replayed. Autocast's cast cache
// is off while capturing (casts cached there would outlive the capture). Throws Error where
// graphs are not available, or when the capture fails (the graph is then discarded).
class CapturedStep {
 public:
  CapturedStep(const torch::Device& device, const std::function<torch::Tensor()>& body);
  ~CapturedStep();
  CapturedStep(const CapturedStep&) = delete;
  CapturedStep& operator=(const CapturedStep&) = delete;
  // Runs the step on the current stream; the loss is the graph's own tensor, overwritten by
  // the next replay.
  torch::Tensor replay();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gemel::train
