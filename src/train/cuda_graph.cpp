#include "gemel/train/cuda_graph.h"
#include "gemel/features.h"

#include <torch/torch.h>

#include <ATen/autocast_mode.h>

#ifdef GEMEL_HAVE_CUDA_RUNTIME
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <optional>

#include "gemel/core/error.h"

namespace gemel::train {

#ifdef GEMEL_HAVE_CUDA_RUNTIME

bool cudaGraphsAvailable() { return torch::cuda::is_available(); }

namespace {
// `later` waits for the work queued on `earlier` so far.
void follow(const c10::cuda::CUDAStream& earlier, const c10::cuda::CUDAStream& later) {
  at::cuda::CUDAEvent done;
  done.record(earlier);
  done.block(later);
}
}  // namespace

struct SideStream::Impl {
  c10::DeviceIndex device;
  c10::cuda::CUDAStream outer;
  std::optional<c10::cuda::CUDAStreamGuard> guard;
  Impl(c10::DeviceIndex d) : device(d), outer(c10::cuda::getCurrentCUDAStream(d)) {}
  void enter(const c10::cuda::CUDAStream& from) {
    const auto side = c10::cuda::getStreamFromPool(false, device);
    follow(from, side);
    guard.emplace(side);
  }
};

SideStream::SideStream(const torch::Device& device) {
  if (!device.is_cuda()) return;
  impl_ = std::make_unique<Impl>(device.index() < 0 ? c10::cuda::current_device() : device.index());
  impl_->enter(impl_->outer);
}

SideStream::~SideStream() {
  if (!impl_) return;
  const auto side = c10::cuda::getCurrentCUDAStream(impl_->device);
  impl_->guard.reset();
  follow(side, impl_->outer);
}

void SideStream::renew() {
  if (!impl_) return;
  const auto old = c10::cuda::getCurrentCUDAStream(impl_->device);
  impl_->guard.reset();
  impl_->enter(old);
}

struct CapturedStep::Impl {
  at::cuda::CUDAGraph graph;
  torch::Tensor loss;
};

CapturedStep::CapturedStep(const torch::Device& device, const std::function<torch::Tensor()>& body)
    : impl_(std::make_unique<Impl>()) {
  GEMEL_THROW_IF_NOT(device.is_cuda() && cudaGraphsAvailable(), Error,
                     "a CUDA graph needs a CUDA device; {} is not one", device.str());
  const bool cache = at::autocast::is_autocast_cache_enabled();
  at::autocast::set_autocast_cache_enabled(false);
  try {
    // Thread-local capture mode: the loader's threads may go on calling CUDA (pinned memory)
    // while this thread captures.
    impl_->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
    try {
      impl_->loss = body();
    } catch (...) {
      try {
        impl_->graph.capture_end();  // ends the capture; the partial graph is dropped
      } catch (...) {
      }
      throw;
    }
    impl_->graph.capture_end();
  } catch (const std::exception& e) {
    at::autocast::set_autocast_cache_enabled(cache);
    throw Error(format("CUDA graph capture of the training step failed: {}", e.what()));
  }
  at::autocast::set_autocast_cache_enabled(cache);
}

torch::Tensor CapturedStep::replay() {
  impl_->graph.replay();
  return impl_->loss;
}

#else  // LibTorch without CUDA: nothing to capture on.

bool cudaGraphsAvailable() { return false; }

struct SideStream::Impl {};
SideStream::SideStream(const torch::Device& device) {
  GEMEL_THROW_IF_NOT(!device.is_cuda(), Error, "this LibTorch has no CUDA; {} is not usable",
                     device.str());
}
SideStream::~SideStream() = default;
void SideStream::renew() {}

struct CapturedStep::Impl {};
CapturedStep::CapturedStep(const torch::Device& device, const std::function<torch::Tensor()>&) {
  throw Error(
      format("CUDA graphs need a CUDA build of LibTorch and a CUDA device, not {}", device.str()));
}
torch::Tensor CapturedStep::replay() { return {}; }

#endif

CapturedStep::~CapturedStep() = default;

}  // namespace gemel::train
