// CUDA kernels for roi_ops.cpp: RoIAlign forward and backward, one thread per output element,
// and NMS's overlap mask, one thread per box against a block of 64 boxes.
#include <cuda_runtime.h>

#include "roi_align_math.h"
#include "roi_ops_cuda.h"

namespace gemel::ops::cuda {
namespace {

constexpr int kThreads = 256;

int blocksFor(long long n) {
  const long long blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65535LL * 32 ? blocks : 65535LL * 32);
}

// Output element `index` of [K, C, pooled_h, pooled_w]: its roi's geometry, its bin, and the
// offset of its channel's plane in an [N, C, H, W] map.
template <typename T>
struct Bin {
  detail::RoiGeometry<T> g;
  int ph, pw;
  long long plane;
};

template <typename T>
__device__ Bin<T> binOf(long long index, const T* rois, int channels, int height, int width,
                        int pooled_h, int pooled_w, int sampling_ratio, bool aligned,
                        T spatial_scale) {
  Bin<T> b;
  b.pw = static_cast<int>(index % pooled_w);
  b.ph = static_cast<int>((index / pooled_w) % pooled_h);
  const int c = static_cast<int>((index / pooled_w / pooled_h) % channels);
  const long long n = index / pooled_w / pooled_h / channels;
  b.g = detail::roiGeometry<T>(rois + n * 5, spatial_scale, pooled_h, pooled_w, sampling_ratio,
                               aligned);
  b.plane = (static_cast<long long>(b.g.batch) * channels + c) * height * width;
  return b;
}

template <typename T>
__global__ void roiAlignForwardKernel(long long total, const T* input, const T* rois, int channels,
                                      int height, int width, int pooled_h, int pooled_w,
                                      int sampling_ratio, bool aligned, T spatial_scale,
                                      T* output) {
  for (long long index = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       index < total; index += static_cast<long long>(blockDim.x) * gridDim.x) {
    const auto b = binOf<T>(index, rois, channels, height, width, pooled_h, pooled_w,
                            sampling_ratio, aligned, spatial_scale);
    output[index] = detail::binValue(b.g, input + b.plane, height, width, b.ph, b.pw);
  }
}

template <typename T>
__global__ void roiAlignBackwardKernel(long long total, const T* grad_output, const T* rois,
                                       int channels, int height, int width, int pooled_h,
                                       int pooled_w, int sampling_ratio, bool aligned,
                                       T spatial_scale, T* grad_input) {
  for (long long index = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       index < total; index += static_cast<long long>(blockDim.x) * gridDim.x) {
    const auto b = binOf<T>(index, rois, channels, height, width, pooled_h, pooled_w,
                            sampling_ratio, aligned, spatial_scale);
    detail::binGradient(b.g, grad_output[index], grad_input + b.plane, height, width, b.ph, b.pw,
                        [](T* address, T value) { atomicAdd(address, value); });
  }
}

template <typename T>
__device__ bool overlaps(const T* a, const T* b, float iou_threshold) {
  const T left = a[0] > b[0] ? a[0] : b[0], right = a[2] < b[2] ? a[2] : b[2];
  const T top = a[1] > b[1] ? a[1] : b[1], bottom = a[3] < b[3] ? a[3] : b[3];
  const T w = right - left > T(0) ? right - left : T(0);
  const T h = bottom - top > T(0) ? bottom - top : T(0);
  const T inter = w * h;
  const T area_a = (a[2] - a[0]) * (a[3] - a[1]), area_b = (b[2] - b[0]) * (b[3] - b[1]);
  return inter / (area_a + area_b - inter) > iou_threshold;
}

// Block (row, col) of the mask: thread t compares box row*64+t with the boxes of block col.
template <typename T>
__global__ void nmsMaskKernel(const T* boxes, int n, float iou_threshold, uint64_t* mask) {
  const int row = blockIdx.y, col = blockIdx.x;
  if (col < row) return;  // only later boxes can be suppressed
  const int rows = min(n - row * kNmsBlock, kNmsBlock);
  const int cols = min(n - col * kNmsBlock, kNmsBlock);
  __shared__ T block[kNmsBlock * 4];
  if (threadIdx.x < cols) {
    for (int k = 0; k < 4; ++k)
      block[threadIdx.x * 4 + k] = boxes[(col * kNmsBlock + threadIdx.x) * 4 + k];
  }
  __syncthreads();
  if (threadIdx.x >= rows) return;
  const int i = row * kNmsBlock + threadIdx.x;
  const T* box = boxes + i * 4;
  uint64_t bits = 0;
  for (int j = row == col ? threadIdx.x + 1 : 0; j < cols; ++j) {
    if (overlaps(box, block + j * 4, iou_threshold)) bits |= 1ULL << j;
  }
  const int words = (n + kNmsBlock - 1) / kNmsBlock;
  mask[static_cast<long long>(i) * words + col] = bits;
}

}  // namespace

template <typename T>
void roiAlignForward(const T* input, const T* rois, int num_rois, int channels, int height,
                     int width, int pooled_h, int pooled_w, int sampling_ratio, bool aligned,
                     T spatial_scale, T* output, void* stream) {
  const long long total = static_cast<long long>(num_rois) * channels * pooled_h * pooled_w;
  if (total == 0) return;
  roiAlignForwardKernel<T><<<blocksFor(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      total, input, rois, channels, height, width, pooled_h, pooled_w, sampling_ratio, aligned,
      spatial_scale, output);
}

template <typename T>
void roiAlignBackward(const T* grad_output, const T* rois, int num_rois, int channels, int height,
                      int width, int pooled_h, int pooled_w, int sampling_ratio, bool aligned,
                      T spatial_scale, T* grad_input, void* stream) {
  const long long total = static_cast<long long>(num_rois) * channels * pooled_h * pooled_w;
  if (total == 0) return;
  roiAlignBackwardKernel<T><<<blocksFor(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      total, grad_output, rois, channels, height, width, pooled_h, pooled_w, sampling_ratio,
      aligned, spatial_scale, grad_input);
}

template <typename T>
void nmsMask(const T* boxes, int n, float iou_threshold, uint64_t* mask, void* stream) {
  if (n == 0) return;
  const int words = (n + kNmsBlock - 1) / kNmsBlock;
  const dim3 blocks(words, words);
  nmsMaskKernel<T>
      <<<blocks, kNmsBlock, 0, static_cast<cudaStream_t>(stream)>>>(boxes, n, iou_threshold, mask);
}

const char* lastError() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? "" : cudaGetErrorString(e);
}

template void roiAlignForward<float>(const float*, const float*, int, int, int, int, int, int, int,
                                     bool, float, float*, void*);
template void roiAlignForward<double>(const double*, const double*, int, int, int, int, int, int,
                                      int, bool, double, double*, void*);
template void roiAlignBackward<float>(const float*, const float*, int, int, int, int, int, int, int,
                                      bool, float, float*, void*);
template void roiAlignBackward<double>(const double*, const double*, int, int, int, int, int, int,
                                       int, bool, double, double*, void*);
template void nmsMask<float>(const float*, int, float, uint64_t*, void*);
template void nmsMask<double>(const double*, int, float, uint64_t*, void*);

}  // namespace gemel::ops::cuda
