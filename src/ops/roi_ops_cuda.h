#pragma once
// The CUDA kernels' launchers (roi_ops_cuda.cu), on raw device pointers so that nvcc never
// compiles LibTorch's headers. `stream` is a cudaStream_t. T: float or double.
#include <cstdint>

namespace gemel::ops::cuda {

template <typename T>
void roiAlignForward(const T* input, const T* rois, int num_rois, int channels, int height,
                     int width, int pooled_h, int pooled_w, int sampling_ratio, bool aligned,
                     T spatial_scale, T* output, void* stream);

// grad_output is [K, C, pooled_h, pooled_w] contiguous; grad_input [N, C, H, W] zeroed.
template <typename T>
void roiAlignBackward(const T* grad_output, const T* rois, int num_rois, int channels, int height,
                      int width, int pooled_h, int pooled_w, int sampling_ratio, bool aligned,
                      T spatial_scale, T* grad_input, void* stream);

// boxes [n, 4], sorted by score, highest first -> mask [n, ceil(n / 64)] of uint64: bit j of
// word (i, j / 64) is set when box j > i overlaps box i by more than iou_threshold.
inline constexpr int kNmsBlock = 64;
template <typename T>
void nmsMask(const T* boxes, int n, float iou_threshold, uint64_t* mask, void* stream);

// The last CUDA error as text, empty when none (clears it).
const char* lastError();

}  // namespace gemel::ops::cuda
