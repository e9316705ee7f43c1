#pragma once
// RoIAlign's geometry, shared by the CPU kernels (roi_ops.cpp) and the CUDA kernels
// (roi_ops_cuda.cu): where a roi's bins lie on the feature map, how many samples each bin
// averages, and each sample's bilinear taps. The arithmetic is torchvision's, step for step,
// so that outputs agree to the last bit where the compilers agree.
#include <cmath>

#ifdef __CUDACC__
#define GEMEL_HD __host__ __device__ __forceinline__
#else
#define GEMEL_HD inline
#endif

namespace gemel::ops::detail {

template <typename T>
struct RoiGeometry {
  int batch;
  T start_h, start_w, bin_h, bin_w;
  int grid_h, grid_w;  // samples per bin side
  T count;             // samples per bin, at least 1
};

// roi: (batch index, x1, y1, x2, y2) in input pixels.
template <typename T>
GEMEL_HD RoiGeometry<T> roiGeometry(const T* roi, T spatial_scale, int pooled_h, int pooled_w,
                                    int sampling_ratio, bool aligned) {
  RoiGeometry<T> g;
  g.batch = static_cast<int>(roi[0]);
  const T offset = aligned ? static_cast<T>(0.5) : static_cast<T>(0);
  g.start_w = roi[1] * spatial_scale - offset;
  g.start_h = roi[2] * spatial_scale - offset;
  T width = roi[3] * spatial_scale - offset - g.start_w;
  T height = roi[4] * spatial_scale - offset - g.start_h;
  if (!aligned) {  // a malformed roi counts as 1 x 1
    width = width > static_cast<T>(1) ? width : static_cast<T>(1);
    height = height > static_cast<T>(1) ? height : static_cast<T>(1);
  }
  g.bin_h = height / static_cast<T>(pooled_h);
  g.bin_w = width / static_cast<T>(pooled_w);
  g.grid_h = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(ceil(height / pooled_h));
  g.grid_w = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(ceil(width / pooled_w));
  const int n = g.grid_h * g.grid_w;
  g.count = static_cast<T>(n > 1 ? n : 1);
  return g;
}

// The sample (iy, ix) of bin (ph, pw).
template <typename T>
GEMEL_HD T sampleY(const RoiGeometry<T>& g, int ph, int iy) {
  return g.start_h + ph * g.bin_h + static_cast<T>(iy + .5f) * g.bin_h / static_cast<T>(g.grid_h);
}
template <typename T>
GEMEL_HD T sampleX(const RoiGeometry<T>& g, int pw, int ix) {
  return g.start_w + pw * g.bin_w + static_cast<T>(ix + .5f) * g.bin_w / static_cast<T>(g.grid_w);
}

// A sample's four taps: offsets into one H x W plane and their weights (all zero for a sample
// more than a pixel outside the map, or at a NaN coordinate).
template <typename T>
struct Taps {
  int pos[4];
  T w[4];
};

template <typename T>
GEMEL_HD Taps<T> bilinearTaps(int height, int width, T y, T x) {
  Taps<T> t;
  if (!(y >= static_cast<T>(-1) && y <= static_cast<T>(height) && x >= static_cast<T>(-1) &&
        x <= static_cast<T>(width))) {
    for (int k = 0; k < 4; ++k) t.pos[k] = 0, t.w[k] = 0;
    return t;
  }
  if (y <= 0) y = 0;
  if (x <= 0) x = 0;
  int y_low = static_cast<int>(y), x_low = static_cast<int>(x), y_high, x_high;
  if (y_low >= height - 1) {
    y_high = y_low = height - 1;
    y = static_cast<T>(y_low);
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= width - 1) {
    x_high = x_low = width - 1;
    x = static_cast<T>(x_low);
  } else {
    x_high = x_low + 1;
  }
  const T ly = y - y_low, lx = x - x_low;
  const T hy = static_cast<T>(1) - ly, hx = static_cast<T>(1) - lx;
  t.pos[0] = y_low * width + x_low;
  t.pos[1] = y_low * width + x_high;
  t.pos[2] = y_high * width + x_low;
  t.pos[3] = y_high * width + x_high;
  t.w[0] = hy * hx;
  t.w[1] = hy * lx;
  t.w[2] = ly * hx;
  t.w[3] = ly * lx;
  return t;
}

// One output bin's value from one channel's plane.
template <typename T>
GEMEL_HD T binValue(const RoiGeometry<T>& g, const T* plane, int height, int width, int ph,
                    int pw) {
  T sum = 0;
  for (int iy = 0; iy < g.grid_h; ++iy) {
    const T y = sampleY(g, ph, iy);
    for (int ix = 0; ix < g.grid_w; ++ix) {
      const auto t = bilinearTaps(height, width, y, sampleX(g, pw, ix));
      sum += t.w[0] * plane[t.pos[0]] + t.w[1] * plane[t.pos[1]] + t.w[2] * plane[t.pos[2]] +
             t.w[3] * plane[t.pos[3]];
    }
  }
  return sum / g.count;
}

// A bin's gradient spread onto one channel's gradient plane; add(address, value) accumulates.
template <typename T, typename Add>
GEMEL_HD void binGradient(const RoiGeometry<T>& g, T grad, T* plane, int height, int width, int ph,
                          int pw, Add add) {
  for (int iy = 0; iy < g.grid_h; ++iy) {
    const T y = sampleY(g, ph, iy);
    for (int ix = 0; ix < g.grid_w; ++ix) {
      const auto t = bilinearTaps(height, width, y, sampleX(g, pw, ix));
      for (int k = 0; k < 4; ++k) {
        if (t.w[k] != static_cast<T>(0)) add(plane + t.pos[k], grad * t.w[k] / g.count);
      }
    }
  }
}

}  // namespace gemel::ops::detail
