#include "gemel/data/transforms.h"

#include <torch/torch.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>

#include "gemel/core/error.h"

namespace gemel::data {

Draws Draws::forStep(uint64_t seed, int task, int64_t step) {
  Draws d(seed * 0x9E3779B97F4A7C15ULL);
  d.key_ = d.next() ^ (static_cast<uint64_t>(task) * 0xD1B54A32D192ED03ULL);
  d.key_ = d.next() ^ static_cast<uint64_t>(step);
  d.counter_ = 0;
  return d;
}

uint64_t Draws::next() {
  // SplitMix64 of key + counter * golden gamma: each output is a function of (key, counter).
  uint64_t z = key_ + (++counter_) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double Draws::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

int64_t Draws::below(int64_t n) {
  GEMEL_ASSERT(n > 0, "Draws::below needs a positive bound");
  // 53 random bits scaled: the bias is below 2^-40 for the small n of crop offsets.
  return std::min(n - 1, static_cast<int64_t>(uniform() * static_cast<double>(n)));
}

namespace {

// Per-channel affine map from a uint8 pixel to the model input: v * scale + shift.
void normalisation(const config::Transforms& t, int64_t c, std::vector<float>& scale,
                   std::vector<float>& shift) {
  scale.resize(c);
  shift.resize(c);
  GEMEL_ASSERT(!t.mean.empty() && !t.std.empty(), "normalisation without mean or std");
  for (int64_t k = 0; k < c; ++k) {
    const auto m = static_cast<float>(t.mean[std::min<std::size_t>(k, t.mean.size() - 1)]);
    const auto s = static_cast<float>(t.std[std::min<std::size_t>(k, t.std.size() - 1)]);
    scale[k] = 1.0f / (255.0f * s);
    shift[k] = -m / s;
  }
}

// CPU: one pass over the output, reading each pixel from its source (crop offset and flip
// folded into the index), parallel over image rows.
torch::Tensor applyCpu(const torch::Tensor& images, const config::Transforms& t,
                       const Augmentation& a) {
  const auto in = images.contiguous();
  const int64_t b = in.size(0), h = in.size(1), w = in.size(2), c = in.size(3);
  std::vector<float> scale, shift;
  normalisation(t, c, scale, shift);
  auto out = torch::empty({b, c, h, w}, torch::kFloat);
  const uint8_t* src = in.data_ptr<uint8_t>();
  float* dst = out.data_ptr<float>();
  const bool moved = !a.dx.empty(), flips = !a.flipped.empty();
  at::parallel_for(0, b * h, 16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t i = row / h, y = row % h;
      const int64_t dy = moved ? a.dy[i] : 0, dx = moved ? a.dx[i] : 0;
      const bool flip = flips && a.flipped[i];
      const int64_t sy = y - dy;
      const uint8_t* image = src + i * h * w * c;
      for (int64_t k = 0; k < c; ++k) {
        float* o = dst + ((i * c + k) * h + y) * w;
        if (sy < 0 || sy >= h) {
          std::fill(o, o + w, shift[k]);
          continue;
        }
        const uint8_t* line = image + sy * w * c + k;
        const float sc = scale[k], sh = shift[k];
        for (int64_t x = 0; x < w; ++x) {
          const int64_t sx = (flip ? w - 1 - x : x) - dx;
          o[x] = (sx >= 0 && sx < w) ? line[sx * c] * sc + sh : sh;
        }
      }
    }
  });
  return out;
}

// Other devices: batched tensor ops (pad, two gathers for the per-image crop, a masked flip).
torch::Tensor applyTensorOps(const torch::Tensor& images, const config::Transforms& t,
                             const Augmentation& a, const torch::Device& device) {
  const int64_t b = images.size(0), h = images.size(1), w = images.size(2), c = images.size(3);
  auto x = images.to(device, /*non_blocking=*/true).permute({0, 3, 1, 2}).to(torch::kFloat);
  if (!a.dx.empty()) {
    int64_t p = 0;
    for (int64_t i = 0; i < b; ++i) p = std::max({p, std::abs(a.dx[i]), std::abs(a.dy[i])});
    if (p > 0) {
      auto padded = torch::constant_pad_nd(x, {p, p, p, p}, 0.0);
      auto oy = torch::tensor(a.dy, torch::kLong).neg_().add_(p);
      auto ox = torch::tensor(a.dx, torch::kLong).neg_().add_(p);
      auto rows = (oy.view({b, 1}) + torch::arange(h, torch::kLong).view({1, h})).to(device);
      auto cols = (ox.view({b, 1}) + torch::arange(w, torch::kLong).view({1, w})).to(device);
      padded = padded.gather(2, rows.view({b, 1, h, 1}).expand({b, c, h, w + 2 * p}));
      x = padded.gather(3, cols.view({b, 1, 1, w}).expand({b, c, h, w}));
    }
  }
  if (!a.flipped.empty()) {
    std::vector<uint8_t> f(a.flipped.begin(), a.flipped.end());
    auto mask = torch::tensor(f, torch::kBool).to(device).view({b, 1, 1, 1});
    x = torch::where(mask, x.flip({3}), x);
  }
  std::vector<float> scale, shift;
  normalisation(t, c, scale, shift);
  auto sc = torch::tensor(scale).view({1, -1, 1, 1}).to(device);
  auto sh = torch::tensor(shift).view({1, -1, 1, 1}).to(device);
  return x.mul_(sc).add_(sh);
}

}  // namespace

torch::Tensor applyAugmentation(const torch::Tensor& images, const config::Transforms& t,
                                const Augmentation& a, const torch::Device& device) {
  GEMEL_THROW_IF_NOT(images.dim() == 4 && images.scalar_type() == torch::kUInt8, InputError,
                     "images must be uint8 [B, H, W, C], got {} of {} dimensions",
                     std::string(c10::toString(images.scalar_type())), images.dim());
  const auto b = static_cast<std::size_t>(images.size(0));
  GEMEL_ASSERT((a.dx.empty() || (a.dx.size() == b && a.dy.size() == b)) &&
                   (a.flipped.empty() || a.flipped.size() == b),
               "augmentation drawn for another batch size");
  return device.is_cpu() ? applyCpu(images, t, a) : applyTensorOps(images, t, a, device);
}

torch::Tensor prepareImages(const torch::Tensor& images, const config::Transforms& t, Draws* draws,
                            const torch::Device& device, Augmentation* applied) {
  const int64_t b = images.size(0);
  Augmentation aug;
  if (draws) {
    // Drawn on the host: crop offsets within the zero padding (black, as torchvision's
    // RandomCrop pads the raw image), then a coin per image for the flip.
    const int64_t p = t.crop_padding;
    aug.dx.assign(b, 0);
    aug.dy.assign(b, 0);
    if (p > 0) {
      for (int64_t i = 0; i < b; ++i) {
        aug.dy[i] = p - draws->below(2 * p + 1);
        aug.dx[i] = p - draws->below(2 * p + 1);
      }
    }
    aug.flipped.assign(b, false);
    if (t.hflip) {
      for (int64_t i = 0; i < b; ++i) aug.flipped[i] = draws->uniform() < 0.5;
    }
  }
  auto x = applyAugmentation(images, t, aug, device);
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

namespace gemel::data {

torch::Tensor prepareDetection(Batch& batch, const config::Transforms& t, int64_t size,
                               Draws* draws, const torch::Device& device) {
  const auto& images = batch.images;
  GEMEL_THROW_IF_NOT(images.dim() == 4 && images.scalar_type() == torch::kUInt8, InputError,
                     "images must be uint8 [B, H, W, C], got {} of {} dimensions",
                     std::string(c10::toString(images.scalar_type())), images.dim());
  const int64_t b = images.size(0), h = images.size(1), w = images.size(2), c = images.size(3);
  const double side = static_cast<double>(std::max(h, w)), s = double(size) / side;
  InputMap base{s, (side - double(w)) / 2 * s, s, (side - double(h)) / 2 * s};
  batch.maps.assign(static_cast<std::size_t>(b), base);
  if (draws) {
    const double j = t.scale_jitter;
    for (int64_t i = 0; i < b; ++i) {
      auto& m = batch.maps[i];
      const double d[4] = {draws->uniform(), draws->uniform(), draws->uniform(), draws->uniform()};
      const double scale = 1 - j + 2 * j * d[0], half = double(size) / 2;
      const double tx = (d[1] - 0.5) * j * double(size), ty = (d[2] - 0.5) * j * double(size);
      m.sx *= scale;
      m.sy *= scale;
      m.ox = (m.ox - half) * scale + half + tx;
      m.oy = (m.oy - half) * scale + half + ty;
      if (t.hflip && d[3] < 0.5) {
        m.sx = -m.sx;
        m.ox = double(size) - m.ox;
      }
    }
  }
  // Targets from the moved boxes.
  std::vector<float> rows;
  if (batch.boxes.size() == static_cast<std::size_t>(b)) {
    const double limit = double(size);
    for (int64_t i = 0; i < b; ++i) {
      const auto& m = batch.maps[i];
      for (const auto& box : batch.boxes[i]) {
        double x1 = m.sx * box.x1 + m.ox, x2 = m.sx * box.x2 + m.ox;
        if (x1 > x2) std::swap(x1, x2);
        const double y1 = std::clamp(m.sy * box.y1 + m.oy, 0.0, limit);
        const double y2 = std::clamp(m.sy * box.y2 + m.oy, 0.0, limit);
        x1 = std::clamp(x1, 0.0, limit);
        x2 = std::clamp(x2, 0.0, limit);
        if (x2 - x1 < 2 || y2 - y1 < 2) continue;
        rows.insert(rows.end(),
                    {float(i), box.cls, float((x1 + x2) / 2 / limit), float((y1 + y2) / 2 / limit),
                     float((x2 - x1) / limit), float((y2 - y1) / limit)});
      }
    }
  }
  batch.targets = torch::tensor(rows, torch::kFloat).view({-1, 6});
  const bool identity = h == size && w == size &&
                        std::all_of(batch.maps.begin(), batch.maps.end(), [](const InputMap& m) {
                          return m.sx == 1 && m.sy == 1 && m.ox == 0 && m.oy == 0;
                        });
  if (identity) return applyAugmentation(images, t, Augmentation{}, device);
  // One affine resampling: theta maps output coordinates to source ones (align_corners=false
  // normalised coordinates).
  std::vector<float> theta;
  for (const auto& m : batch.maps) {
    theta.insert(theta.end(), {float(double(size) / (m.sx * double(w))), 0.0f,
                               float((double(size) - 2 * m.ox) / (m.sx * double(w)) - 1), 0.0f,
                               float(double(size) / (m.sy * double(h))),
                               float((double(size) - 2 * m.oy) / (m.sy * double(h)) - 1)});
  }
  auto th = torch::tensor(theta, torch::kFloat).view({b, 2, 3}).to(device);
  auto x = images.to(device, /*non_blocking=*/true).permute({0, 3, 1, 2}).to(torch::kFloat);
  auto grid = torch::nn::functional::affine_grid(th, {b, c, size, size}, false);
  x = torch::nn::functional::grid_sample(x, grid,
                                         torch::nn::functional::GridSampleFuncOptions()
                                             .mode(torch::kBilinear)
                                             .padding_mode(torch::kZeros)
                                             .align_corners(false));
  std::vector<float> scale, shift;
  normalisation(t, c, scale, shift);
  auto sc = torch::tensor(scale).view({1, -1, 1, 1}).to(device);
  auto sh = torch::tensor(shift).view({1, -1, 1, 1}).to(device);
  return x.mul_(sc).add_(sh).contiguous();
}

}  // namespace gemel::data
