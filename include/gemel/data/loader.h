#pragma once
// ShardedLoader: reads this rank's shard of one split of a dataset in the background and hands
// out uint8 batches. A prefetch thread keeps up to `prefetch` batches ready (in pinned memory
// when CUDA is present), so a training step never waits on disk. Normalisation and
// augmentation happen later, on the device (transforms.h).
//
// Reading: when the shard's images fit in `cache_bytes` they are read once, in one contiguous
// block, and every later batch is a memory gather; otherwise each batch reads its images.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "gemel/data/dataset.h"
#include "gemel/models/model.h"  // BoxTargets

namespace gemel::data {

struct LoaderOptions {
  std::string split = "train";
  int64_t batch_size = 32;
  int rank = 0;
  int world_size = 1;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 0;
  int prefetch = 4;                        // batches ready ahead
  bool pin_memory = true;                  // only when CUDA is available
  int64_t cache_bytes = int64_t(2) << 30;  // cache the shard in memory up to this size
  // > 0: every holdout_every-th example of the split (index % holdout_every ==
  // holdout_every - 1) is held out; the loader reads the rest, or, with held_out, only those.
  int holdout_every = 0;
  bool held_out = false;
};

// Where a source pixel lands in the model's input: x_in = sx * x + ox, y_in = sy * y + oy
// (detection letterboxing and augmentation; sx < 0 when the image was flipped).
struct InputMap {
  double sx = 1, ox = 0, sy = 1, oy = 0;
};

struct Batch {
  torch::Tensor images;                 // uint8 [B, H, W, C]
  torch::Tensor labels;                 // int64 [B] (classification)
  std::vector<std::vector<Box>> boxes;  // per image, source pixels (detection)
  std::vector<int64_t> indices;         // dataset indices, in batch order
  // Filled when a detection batch is prepared for the model: per image, the map from source to
  // input pixels, and the training targets [M, 6] (image, class, cx, cy, w, h), relative to the
  // square input.
  std::vector<InputMap> maps;
  torch::Tensor targets;
  // Filled when a batch is prepared for a model that computes its own losses (Faster R-CNN):
  // per image, the boxes in input pixels and the labels counted from 1.
  std::vector<models::BoxTargets> box_targets;
};

class ShardedLoader {
 public:
  ShardedLoader(std::shared_ptr<const DatasetReader> reader, LoaderOptions options);
  ~ShardedLoader();
  ShardedLoader(const ShardedLoader&) = delete;
  ShardedLoader& operator=(const ShardedLoader&) = delete;

  // Starts reading an epoch (ends any epoch in progress), from its batch `first_batch` on (a
  // resumed run skips the batches it had already taken, without reading them).
  void startEpoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the epoch, or nullopt at its end.
  std::optional<Batch> next();

  int64_t shardSize() const;  // examples this loader reads per epoch (its shard, its part)
  int64_t batchesPerEpoch() const;
  const DatasetInfo& info() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gemel::data
