#pragma once
// Turning loader batches (uint8 NHWC on the host) into model inputs on the device: transfer,
// NCHW float in [0, 1], training augmentation (random crop after zero padding, horizontal flip),
// then per-channel normalisation. All of it runs as batched tensor ops on the target device.
#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "gemel/config/workload.h"
#include "gemel/data/dataset.h"
#include "gemel/data/loader.h"

namespace gemel::data {

// The random draws of one batch's augmentation: a counter-based stream (SplitMix64 over a key
// and a counter). A batch's draws depend on its key alone, (seed, task, step) while training,
// so no generator is reseeded on the step path or shared between the tasks of a process, and a
// resumed run draws what the uninterrupted one drew.
class Draws {
 public:
  explicit Draws(uint64_t key) : key_(key) {}
  static Draws forStep(uint64_t seed, int task, int64_t step);
  uint64_t next();
  double uniform();          // [0, 1)
  int64_t below(int64_t n);  // [0, n), for n > 0

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

struct Augmentation {
  std::vector<int64_t> dx, dy;  // per image: crop offset minus padding (pixels the image moved)
  std::vector<bool> flipped;    // per image
};

// images: uint8 [B, H, W, C]. Returns float [B, C, H, W] on `device`. With `draws` (training)
// the augmentation is drawn from them and reported in `applied` (if given); without, none.
torch::Tensor prepareImages(const torch::Tensor& images, const config::Transforms& transforms,
                            Draws* draws, const torch::Device& device,
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
// 2 px on a side are dropped). Moves only with `draws` (training).
torch::Tensor prepareDetection(Batch& batch, const config::Transforms& transforms, int64_t size,
                               Draws* draws, const torch::Device& device);

// Moves boxes the way prepareImages moved their image (flip, then shift; clipped; boxes that
// leave the image are dropped).
std::vector<Box> augmentBoxes(const std::vector<Box>& boxes, const Augmentation& a,
                              std::size_t image, int64_t height, int64_t width);

}  // namespace gemel::data
