#pragma once
// Turning loader batches (uint8 NHWC on the host) into model inputs on the device: transfer,
// NCHW float in [0, 1], training augmentation (random crop after zero padding, horizontal flip),
// then per-channel normalisation. All of it runs as batched tensor ops on the target device.
#include <vector>

#include <torch/types.h>

#include "gemel/config/workload.h"
#include "gemel/data/dataset.h"
#include "gemel/data/loader.h"

namespace gemel::data {

struct Augmentation {
  std::vector<int64_t> dx, dy;  // per image: crop offset minus padding (pixels the image moved)
  std::vector<bool> flipped;    // per image
};

// images: uint8 [B, H, W, C]. Returns float [B, C, H, W] on `device`. When `train` is true the
// augmentation is drawn from torch's default generator and reported in `applied` (if given).
torch::Tensor prepareImages(const torch::Tensor& images, const config::Transforms& transforms,
                            bool train, const torch::Device& device,
                            Augmentation* applied = nullptr);

// Applies a given augmentation (empty vectors: none) and the normalisation. On the CPU this is a
// single pass over the output; elsewhere it is batched tensor ops. prepareImages draws `a` and
// calls this; tests call it to compare the two paths.
torch::Tensor applyAugmentation(const torch::Tensor& images, const config::Transforms& transforms,
                                const Augmentation& a, const torch::Device& device);

// Detection inputs: each image letterboxed to size x size (aspect kept, centred, black padding),
// and while training moved by a random scale in [1 - j, 1 + j], a shift within +-j/2 of the
// input (j = scale_jitter) and a horizontal flip (hflip); then normalised. One batched
// resampling on `device` (none when the images are already size x size and nothing moves).
// Fills batch.maps, and batch.targets from the moved boxes (clipped to the input; boxes under
// 2 px on a side are dropped). Draws from torch's default generator.
torch::Tensor prepareDetection(Batch& batch, const config::Transforms& transforms, int64_t size,
                               bool train, const torch::Device& device);

// Moves boxes the way prepareImages moved their image (flip, then shift; clipped; boxes that
// leave the image are dropped).
std::vector<Box> augmentBoxes(const std::vector<Box>& boxes, const Augmentation& a,
                              std::size_t image, int64_t height, int64_t width);

}  // namespace gemel::data
