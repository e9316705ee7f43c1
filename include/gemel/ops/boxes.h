#pragma once
// The box arithmetic of torchvision's two-stage detectors (torchvision.ops.boxes and
// torchvision.models.detection._utils / anchor_utils), computed as they compute it. Boxes are
// (x1, y1, x2, y2) in pixels.
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace gemel::ops {

// [N, 4] x [M, 4] -> IoU [N, M] (0/0 for two empty boxes is NaN, as in torchvision).
torch::Tensor boxIou(const torch::Tensor& a, const torch::Tensor& b);
// Coordinates clamped to [0, width] and [0, height].
torch::Tensor clipBoxesToImage(const torch::Tensor& boxes, int64_t height, int64_t width);
// Boxes of an image of size `from` (height, width) scaled to one of size `to`, as torchvision's
// transform's resize_boxes computes it (float ratios).
torch::Tensor resizeBoxes(const torch::Tensor& boxes, std::array<int64_t, 2> from,
                          std::array<int64_t, 2> to);
// Indices of the boxes whose sides are both at least min_size.
torch::Tensor removeSmallBoxes(const torch::Tensor& boxes, double min_size);

// Box regression targets: (dx, dy, dw, dh) of `boxes` against reference boxes, scaled by
// `weights`; decode clamps dw and dh at `clip` before exp().
struct BoxCoder {
  std::array<double, 4> weights{1, 1, 1, 1};
  double clip = std::log(1000.0 / 16);
  // reference (ground truth) [N, 4] against proposals [N, 4] -> [N, 4]
  torch::Tensor encode(const torch::Tensor& reference, const torch::Tensor& proposals) const;
  // codes [N, 4k] on boxes [N, 4] -> [N, k, 4]
  torch::Tensor decode(const torch::Tensor& codes, const torch::Tensor& boxes) const;
};

// Assigns each prediction (column of an [M ground truth, N predictions] quality matrix) its
// best ground truth, kBelowLow under low, kBetween in [low, high); with low-quality matches,
// every prediction that is some ground truth's best keeps its best match.
struct Matcher {
  static constexpr int64_t kBelowLow = -1, kBetween = -2;
  double high = 0.7, low = 0.3;
  bool allow_low_quality = false;
  torch::Tensor operator()(const torch::Tensor& quality) const;  // -> int64 [N]
};

// torchvision's AnchorGenerator: per feature map, sizes x aspect ratios cell anchors (rounded),
// shifted over the map's grid at the stride (padded image size / map size).
struct AnchorGenerator {
  std::vector<std::vector<double>> sizes;          // per feature map
  std::vector<std::vector<double>> aspect_ratios;  // per feature map
  int64_t anchorsPerLocation(std::size_t level) const;
  // The anchors of one image [sum over maps of H * W * A, 4], map by map, location-major.
  // image: the padded batch's (height, width); maps: each feature map's (height, width).
  torch::Tensor operator()(std::array<int64_t, 2> image,
                           const std::vector<std::array<int64_t, 2>>& maps,
                           const torch::TensorOptions& options) const;
};

}  // namespace gemel::ops
