// roi_align, nms and batched_nms (roi_ops.h): CPU kernels here, CUDA kernels in
// roi_ops_cuda.cu, one autograd Function over both.
#include "gemel/ops/roi_ops.h"
#include "gemel/features.h"

#include <torch/torch.h>

#include <vector>

#include "gemel/core/error.h"
#include "roi_align_math.h"

#ifdef GEMEL_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "roi_ops_cuda.h"
#endif

namespace gemel::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

struct RoiParams {
  double spatial_scale;
  int64_t pooled_h, pooled_w, sampling_ratio;
  bool aligned;
};

// float and double run as they are; half and bfloat16 in float.
torch::ScalarType computeType(torch::ScalarType t) {
  return t == torch::kDouble ? torch::kDouble : torch::kFloat;
}

#ifdef GEMEL_HAVE_CUDA_KERNELS
void* currentStream(const torch::Tensor& t) {
  return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
}

void checkLaunch(const char* op) {
  const std::string error = cuda::lastError();
  GEMEL_THROW_IF_NOT(error.empty(), InputError, "{}: the CUDA kernel failed: {}", op, error);
}
#else
[[noreturn]] void noCudaKernels(const char* op) {
  throw InputError(
      format("{} on a CUDA tensor: this gemel was built without its CUDA kernels "
             "(LibTorch without CUDA); rebuild with a CUDA LibTorch",
             op));
}
#endif

// The taps of every sample of one roi, bin by bin (torchvision's pre-calculation: shared by
// all channels).
template <typename T>
void roiTaps(const detail::RoiGeometry<T>& g, int height, int width, const RoiParams& p,
             std::vector<detail::Taps<T>>& taps) {
  taps.clear();
  for (int ph = 0; ph < p.pooled_h; ++ph) {
    for (int pw = 0; pw < p.pooled_w; ++pw) {
      for (int iy = 0; iy < g.grid_h; ++iy) {
        const T y = detail::sampleY(g, ph, iy);
        for (int ix = 0; ix < g.grid_w; ++ix)
          taps.push_back(detail::bilinearTaps(height, width, y, detail::sampleX(g, pw, ix)));
      }
    }
  }
}

template <typename T>
void forwardCpu(const torch::Tensor& input, const torch::Tensor& rois, const RoiParams& p,
                torch::Tensor& out) {
  const int channels = static_cast<int>(input.size(1)), height = static_cast<int>(input.size(2)),
            width = static_cast<int>(input.size(3));
  const T* in = input.data_ptr<T>();
  const T* r = rois.data_ptr<T>();
  T* o = out.data_ptr<T>();
  const int64_t bins = p.pooled_h * p.pooled_w;
  at::parallel_for(0, rois.size(0), 1, [&](int64_t begin, int64_t end) {
    std::vector<detail::Taps<T>> taps;
    for (int64_t n = begin; n < end; ++n) {
      const auto g = detail::roiGeometry<T>(
          r + n * 5, static_cast<T>(p.spatial_scale), static_cast<int>(p.pooled_h),
          static_cast<int>(p.pooled_w), static_cast<int>(p.sampling_ratio), p.aligned);
      roiTaps(g, height, width, p, taps);
      const int64_t per_bin = static_cast<int64_t>(g.grid_h) * g.grid_w;
      for (int c = 0; c < channels; ++c) {
        const T* plane = in + (static_cast<int64_t>(g.batch) * channels + c) * height * width;
        T* dst = o + (n * channels + c) * bins;
        const detail::Taps<T>* t = taps.data();
        for (int64_t b = 0; b < bins; ++b) {
          T sum = 0;
          for (int64_t s = 0; s < per_bin; ++s, ++t) {
            sum += t->w[0] * plane[t->pos[0]] + t->w[1] * plane[t->pos[1]] +
                   t->w[2] * plane[t->pos[2]] + t->w[3] * plane[t->pos[3]];
          }
          dst[b] = sum / g.count;
        }
      }
    }
  });
}

// Each channel's gradient plane is written by that channel's bins only: channels in parallel,
// rois in order within one (the order torchvision accumulates in).
template <typename T>
void backwardCpu(const torch::Tensor& grad, const torch::Tensor& rois, const RoiParams& p,
                 torch::Tensor& grad_input) {
  const int channels = static_cast<int>(grad_input.size(1)),
            height = static_cast<int>(grad_input.size(2)),
            width = static_cast<int>(grad_input.size(3));
  const T* go = grad.data_ptr<T>();
  const T* r = rois.data_ptr<T>();
  T* gi = grad_input.data_ptr<T>();
  const int64_t bins = p.pooled_h * p.pooled_w, num_rois = rois.size(0);
  at::parallel_for(0, channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      for (int64_t n = 0; n < num_rois; ++n) {
        const auto g = detail::roiGeometry<T>(
            r + n * 5, static_cast<T>(p.spatial_scale), static_cast<int>(p.pooled_h),
            static_cast<int>(p.pooled_w), static_cast<int>(p.sampling_ratio), p.aligned);
        T* plane = gi + (static_cast<int64_t>(g.batch) * channels + c) * height * width;
        const T* src = go + (n * channels + c) * bins;
        for (int ph = 0; ph < p.pooled_h; ++ph) {
          for (int pw = 0; pw < p.pooled_w; ++pw) {
            detail::binGradient(g, src[ph * p.pooled_w + pw], plane, height, width, ph, pw,
                                [](T* address, T value) { *address += value; });
          }
        }
      }
    }
  });
}

torch::Tensor roiAlignForward(const torch::Tensor& input_in, const torch::Tensor& rois_in,
                              const RoiParams& p) {
  const auto type = computeType(input_in.scalar_type());
  const auto input = input_in.to(type).contiguous();
  const auto rois = rois_in.to(type).contiguous();
  auto out = torch::zeros({rois.size(0), input.size(1), p.pooled_h, p.pooled_w}, input.options());
  if (out.numel() == 0) return out.to(input_in.scalar_type());
  if (input.is_cuda()) {
#ifdef GEMEL_HAVE_CUDA_KERNELS
    const c10::cuda::CUDAGuard guard(input.device());
    AT_DISPATCH_FLOATING_TYPES(type, "roi_align", [&] {
      cuda::roiAlignForward<scalar_t>(
          input.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(), static_cast<int>(rois.size(0)),
          static_cast<int>(input.size(1)), static_cast<int>(input.size(2)),
          static_cast<int>(input.size(3)), static_cast<int>(p.pooled_h),
          static_cast<int>(p.pooled_w), static_cast<int>(p.sampling_ratio), p.aligned,
          static_cast<scalar_t>(p.spatial_scale), out.data_ptr<scalar_t>(), currentStream(input));
    });
    checkLaunch("roi_align");
#else
    noCudaKernels("roi_align");
#endif
  } else {
    AT_DISPATCH_FLOATING_TYPES(type, "roi_align",
                               [&] { forwardCpu<scalar_t>(input, rois, p, out); });
  }
  return out.to(input_in.scalar_type());
}

torch::Tensor roiAlignBackward(const torch::Tensor& grad_in, const torch::Tensor& rois_in,
                               const std::vector<int64_t>& input_shape, const RoiParams& p) {
  const auto type = computeType(grad_in.scalar_type());
  const auto grad = grad_in.to(type).contiguous();
  const auto rois = rois_in.to(type).contiguous();
  auto grad_input = torch::zeros(input_shape, grad.options());
  if (grad.numel() == 0) return grad_input.to(grad_in.scalar_type());
  if (grad.is_cuda()) {
#ifdef GEMEL_HAVE_CUDA_KERNELS
    const c10::cuda::CUDAGuard guard(grad.device());
    AT_DISPATCH_FLOATING_TYPES(type, "roi_align_backward", [&] {
      cuda::roiAlignBackward<scalar_t>(
          grad.data_ptr<scalar_t>(), rois.data_ptr<scalar_t>(), static_cast<int>(rois.size(0)),
          static_cast<int>(input_shape[1]), static_cast<int>(input_shape[2]),
          static_cast<int>(input_shape[3]), static_cast<int>(p.pooled_h),
          static_cast<int>(p.pooled_w), static_cast<int>(p.sampling_ratio), p.aligned,
          static_cast<scalar_t>(p.spatial_scale), grad_input.data_ptr<scalar_t>(),
          currentStream(grad));
    });
    checkLaunch("roi_align backward");
#else
    noCudaKernels("roi_align");
#endif
  } else {
    AT_DISPATCH_FLOATING_TYPES(type, "roi_align_backward",
                               [&] { backwardCpu<scalar_t>(grad, rois, p, grad_input); });
  }
  return grad_input.to(grad_in.scalar_type());
}

class RoiAlignFunction : public torch::autograd::Function<RoiAlignFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& input,
                               const torch::Tensor& rois, double spatial_scale, int64_t pooled_h,
                               int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
    ctx->saved_data["spatial_scale"] = spatial_scale;
    ctx->saved_data["pooled_h"] = pooled_h;
    ctx->saved_data["pooled_w"] = pooled_w;
    ctx->saved_data["sampling_ratio"] = sampling_ratio;
    ctx->saved_data["aligned"] = aligned;
    ctx->saved_data["input_shape"] = input.sizes().vec();
    ctx->save_for_backward({rois});
    return roiAlignForward(input, rois,
                           {spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned});
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto rois = ctx->get_saved_variables()[0];
    const RoiParams p{ctx->saved_data["spatial_scale"].toDouble(),
                      ctx->saved_data["pooled_h"].toInt(), ctx->saved_data["pooled_w"].toInt(),
                      ctx->saved_data["sampling_ratio"].toInt(),
                      ctx->saved_data["aligned"].toBool()};
    const auto shape = ctx->saved_data["input_shape"].toIntVector();
    return {roiAlignBackward(grads[0], rois, shape, p),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor()};
  }
};

template <typename T>
std::vector<int64_t> nmsCpu(const torch::Tensor& sorted, double iou_threshold) {
  const int64_t n = sorted.size(0);
  const T* b = sorted.data_ptr<T>();
  std::vector<T> area(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    area[i] = (b[4 * i + 2] - b[4 * i]) * (b[4 * i + 3] - b[4 * i + 1]);
  std::vector<char> removed(static_cast<std::size_t>(n), 0);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < n; ++i) {
    if (removed[i]) continue;
    keep.push_back(i);
    for (int64_t j = i + 1; j < n; ++j) {
      if (removed[j]) continue;
      const T w =
          std::max(T(0), std::min(b[4 * i + 2], b[4 * j + 2]) - std::max(b[4 * i], b[4 * j]));
      const T h = std::max(
          T(0), std::min(b[4 * i + 3], b[4 * j + 3]) - std::max(b[4 * i + 1], b[4 * j + 1]));
      const T inter = w * h;
      if (inter / (area[i] + area[j] - inter) > iou_threshold) removed[j] = 1;
    }
  }
  return keep;
}

}  // namespace

torch::Tensor roiAlign(const torch::Tensor& input, const torch::Tensor& rois, double spatial_scale,
                       int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  GEMEL_THROW_IF_NOT(input.dim() == 4, InputError,
                     "roi_align: input is {}-d; expected [N, C, H, W]", input.dim());
  GEMEL_THROW_IF_NOT(rois.dim() == 2 && rois.size(1) == 5, InputError,
                     "roi_align: rois have shape {}; expected [K, 5] (batch index, x1, y1, x2, y2)",
                     rois.sizes());
  GEMEL_THROW_IF_NOT(input.device() == rois.device(), InputError,
                     "roi_align: input is on {} and rois on {}", input.device().str(),
                     rois.device().str());
  GEMEL_THROW_IF_NOT(pooled_h > 0 && pooled_w > 0, InputError,
                     "roi_align: output size {}x{}; expected positive", pooled_h, pooled_w);
  GEMEL_THROW_IF_NOT(input.is_floating_point(), InputError,
                     "roi_align: input is not floating point");
  return RoiAlignFunction::apply(input, rois.to(input.scalar_type()), spatial_scale, pooled_h,
                                 pooled_w, sampling_ratio, aligned);
}

torch::Tensor nms(const torch::Tensor& boxes, const torch::Tensor& scores, double iou_threshold) {
  GEMEL_THROW_IF_NOT(boxes.dim() == 2 && boxes.size(1) == 4, InputError,
                     "nms: boxes have shape {}; expected [K, 4]", boxes.sizes());
  GEMEL_THROW_IF_NOT(scores.dim() == 1 && scores.size(0) == boxes.size(0), InputError,
                     "nms: scores have shape {} for {} boxes", scores.sizes(), boxes.size(0));
  const int64_t n = boxes.size(0);
  if (n == 0) return torch::empty({0}, boxes.options().dtype(torch::kLong));
  // torchvision's own sort: torch.sort on the CPU (not stable), a stable one on CUDA; so equal
  // scores come out in the order torchvision's do.
  const auto order =
      std::get<1>(boxes.is_cuda() ? scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true)
                                  : scores.sort(/*dim=*/0, /*descending=*/true));
  const auto type = computeType(boxes.scalar_type());
  const auto sorted = boxes.index_select(0, order).to(type).contiguous();
  std::vector<int64_t> keep;
  if (boxes.is_cuda()) {
#ifdef GEMEL_HAVE_CUDA_KERNELS
    const c10::cuda::CUDAGuard guard(boxes.device());
    const int64_t words = (n + cuda::kNmsBlock - 1) / cuda::kNmsBlock;
    auto mask = torch::zeros({n, words}, boxes.options().dtype(torch::kLong));
    AT_DISPATCH_FLOATING_TYPES(type, "nms", [&] {
      cuda::nmsMask<scalar_t>(
          sorted.data_ptr<scalar_t>(), static_cast<int>(n), static_cast<float>(iou_threshold),
          reinterpret_cast<uint64_t*>(mask.data_ptr<int64_t>()), currentStream(boxes));
    });
    checkLaunch("nms");
    const auto host = mask.cpu();
    const auto* bits = reinterpret_cast<const uint64_t*>(host.data_ptr<int64_t>());
    std::vector<uint64_t> removed(static_cast<std::size_t>(words), 0);
    for (int64_t i = 0; i < n; ++i) {
      if (removed[i / cuda::kNmsBlock] >> (i % cuda::kNmsBlock) & 1) continue;
      keep.push_back(i);
      for (int64_t w = i / cuda::kNmsBlock; w < words; ++w) removed[w] |= bits[i * words + w];
    }
#else
    noCudaKernels("nms");
#endif
  } else {
    AT_DISPATCH_FLOATING_TYPES(type, "nms",
                               [&] { keep = nmsCpu<scalar_t>(sorted, iou_threshold); });
  }
  const auto kept = torch::tensor(keep, torch::kLong).to(order.device());
  return order.index_select(0, kept);
}

torch::Tensor batchedNms(const torch::Tensor& boxes, const torch::Tensor& scores,
                         const torch::Tensor& idxs, double iou_threshold) {
  GEMEL_THROW_IF_NOT(idxs.dim() == 1 && idxs.size(0) == boxes.size(0), InputError,
                     "batched_nms: idxs have shape {} for {} boxes", idxs.sizes(), boxes.size(0));
  if (boxes.numel() == 0) return torch::empty({0}, boxes.options().dtype(torch::kLong));
  // torchvision's two strategies, at its switch-over size: per category for many boxes,
  // else one nms over boxes moved apart by category.
  if (boxes.numel() > (boxes.is_cuda() ? 100000 : 4000)) {
    auto keep_mask = torch::zeros({boxes.size(0)}, boxes.options().dtype(torch::kBool));
    const auto categories = std::get<0>(at::_unique(idxs));
    for (int64_t k = 0; k < categories.size(0); ++k) {
      const auto members = torch::nonzero(idxs == categories[k]).flatten();
      const auto kept =
          nms(boxes.index_select(0, members), scores.index_select(0, members), iou_threshold);
      keep_mask.index_put_({members.index_select(0, kept)}, true);
    }
    const auto keep = torch::nonzero(keep_mask).flatten();
    const auto order = std::get<1>(scores.index_select(0, keep).sort(0, /*descending=*/true));
    return keep.index_select(0, order);
  }
  const auto offsets = idxs.to(boxes.scalar_type()) * (boxes.max() + 1);
  return nms(boxes + offsets.unsqueeze(1), scores, iou_threshold);
}

bool haveCudaKernels() {
#ifdef GEMEL_HAVE_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

}  // namespace gemel::ops
