#pragma once
// The reference for the augmentation tests (CPU and GPU): torchvision's order of operations
// spelled out with plain tensor ops, image by image, and one fixed case to run it on.
#include <torch/torch.h>

#include "gemel/config/workload.h"
#include "gemel/data/transforms.h"

namespace gemel::data {

// The reference: torchvision's order of operations spelled out with plain tensor ops, per image.
inline torch::Tensor referenceAugment(const torch::Tensor& images, const config::Transforms& t,
                                      const Augmentation& a) {
  const int64_t b = images.size(0), h = images.size(1), w = images.size(2), p = 4;
  auto x = images.permute({0, 3, 1, 2}).to(torch::kFloat).div(255.0);
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < b; ++i) {
    auto padded = torch::constant_pad_nd(x[i], {p, p, p, p}, 0.0);
    auto crop = padded.narrow(1, p - a.dy[i], h).narrow(2, p - a.dx[i], w);
    if (a.flipped[i]) crop = crop.flip({2});
    out.push_back(crop);
  }
  auto m = torch::tensor(std::vector<float>(t.mean.begin(), t.mean.end())).view({1, -1, 1, 1});
  auto s = torch::tensor(std::vector<float>(t.std.begin(), t.std.end())).view({1, -1, 1, 1});
  return (torch::stack(out) - m) / s;
}

struct AugmentCase {
  torch::Tensor images;
  config::Transforms transforms;  // ImageNet mean and std
  Augmentation a;
};

inline AugmentCase augmentCase() {
  torch::manual_seed(3);
  AugmentCase c;
  c.images = torch::randint(0, 256, {6, 7, 9, 3}, torch::kUInt8);
  for (int i = 0; i < 6; ++i) {
    c.a.dx.push_back(i % 2 ? -(i % 4) : (i % 5));  // within the padding of 4, both signs
    c.a.dy.push_back(i % 3 ? (i % 4) : -3);
    c.a.flipped.push_back(i % 2 == 0);
  }
  return c;
}

}  // namespace gemel::data
