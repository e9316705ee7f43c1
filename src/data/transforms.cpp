#include "gemel/data/transforms.h"

#include <torch/torch.h>

#include <algorithm>

namespace gemel::data {

torch::Tensor prepareImages(const torch::Tensor& images, const config::Transforms& t, bool train,
                            const torch::Device& device, Augmentation* applied) {
  const int64_t b = images.size(0), h = images.size(1), w = images.size(2), c = images.size(3);
  auto x =
      images.to(device, /*non_blocking=*/true).permute({0, 3, 1, 2}).to(torch::kFloat).div_(255.0);
  Augmentation aug;
  if (train) {
    const int64_t p = t.crop_padding;
    if (p > 0) {
      // Zero-pad (black, as torchvision's RandomCrop pads the raw image), then take an HxW window
      // at a random offset per image with two gathers.
      auto padded = torch::constant_pad_nd(x, {p, p, p, p}, 0.0);
      auto oy = torch::randint(0, 2 * p + 1, {b}, torch::kLong);
      auto ox = torch::randint(0, 2 * p + 1, {b}, torch::kLong);
      auto ar_h = torch::arange(h, torch::kLong), ar_w = torch::arange(w, torch::kLong);
      auto rows = (oy.view({b, 1}) + ar_h.view({1, h})).to(device);  // [B, H]
      auto cols = (ox.view({b, 1}) + ar_w.view({1, w})).to(device);  // [B, W]
      const int64_t wp = w + 2 * p;
      padded = padded.gather(2, rows.view({b, 1, h, 1}).expand({b, c, h, wp}));
      x = padded.gather(3, cols.view({b, 1, 1, w}).expand({b, c, h, w}));
      auto oy_a = oy.accessor<int64_t, 1>(), ox_a = ox.accessor<int64_t, 1>();
      for (int64_t i = 0; i < b; ++i) {
        aug.dy.push_back(p - oy_a[i]);
        aug.dx.push_back(p - ox_a[i]);
      }
    } else {
      aug.dx.assign(b, 0);
      aug.dy.assign(b, 0);
    }
    if (t.hflip) {
      auto flip = torch::rand({b}) < 0.5;  // [B] bool
      x = torch::where(flip.to(device).view({b, 1, 1, 1}), x.flip({3}), x);
      auto f = flip.accessor<bool, 1>();
      for (int64_t i = 0; i < b; ++i) aug.flipped.push_back(f[i]);
    } else {
      aug.flipped.assign(b, false);
    }
  }
  std::vector<float> mean(t.mean.begin(), t.mean.begin() + std::min<std::size_t>(c, t.mean.size()));
  std::vector<float> stdv(t.std.begin(), t.std.begin() + std::min<std::size_t>(c, t.std.size()));
  auto m = torch::tensor(mean).view({1, -1, 1, 1}).to(device);
  auto s = torch::tensor(stdv).view({1, -1, 1, 1}).to(device);
  x = (x - m) / s;
  if (applied) *applied = std::move(aug);
  return x;
}

std::vector<Box> augmentBoxes(const std::vector<Box>& boxes, const Augmentation& a,
                              std::size_t image, int64_t height, int64_t width) {
  std::vector<Box> out;
  const float W = static_cast<float>(width), H = static_cast<float>(height);
  for (auto b : boxes) {
    if (image < a.flipped.size() && a.flipped[image]) {
      const float x1 = W - b.x2, x2 = W - b.x1;
      b.x1 = x1;
      b.x2 = x2;
    }
    if (image < a.dx.size()) {
      b.x1 += a.dx[image];
      b.x2 += a.dx[image];
      b.y1 += a.dy[image];
      b.y2 += a.dy[image];
    }
    b.x1 = std::clamp(b.x1, 0.0f, W);
    b.x2 = std::clamp(b.x2, 0.0f, W);
    b.y1 = std::clamp(b.y1, 0.0f, H);
    b.y2 = std::clamp(b.y2, 0.0f, H);
    if (b.x2 - b.x1 >= 1.0f && b.y2 - b.y1 >= 1.0f) out.push_back(b);
  }
  return out;
}

}  // namespace gemel::data
