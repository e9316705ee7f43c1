#include "gemel/data/loader.h"

#include <torch/torch.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "gemel/core/error.h"
#include "gemel/data/shard.h"

namespace gemel::data {

struct ShardedLoader::Impl {
  std::shared_ptr<const DatasetReader> reader;
  LoaderOptions options;
  ShardRange shard;
  bool pin = false;
  std::vector<uint8_t> cache;  // the shard's images when they fit in cache_bytes

  std::mutex mutex;
  std::condition_variable ready, space;
  std::deque<Batch> queue;
  bool finished = false;  // producer reached the end of the epoch
  bool stop = false;
  std::exception_ptr error;
  std::thread worker;

  int64_t batches() const {
    const int64_t n = shard.size(), b = options.batch_size;
    return options.drop_last ? n / b : (n + b - 1) / b;
  }

  Batch makeBatch(const std::vector<int64_t>& order, int64_t first, int64_t count) {
    const auto& info = reader->info();
    const int64_t bytes = info.imageBytes();
    auto opts = torch::TensorOptions().dtype(torch::kUInt8);
    Batch batch;
    batch.images =
        torch::empty({count, info.height, info.width, info.channels}, opts.pinned_memory(pin));
    auto* out = batch.images.data_ptr<uint8_t>();
    batch.indices.assign(order.begin() + first, order.begin() + first + count);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t index = batch.indices[i];
      if (!cache.empty()) {
        std::memcpy(out + i * bytes, cache.data() + (index - shard.begin) * bytes, bytes);
      } else {
        reader->readImages(options.split, index, 1, out + i * bytes);
      }
    }
    if (info.kind == DatasetKind::kClassification) {
      batch.labels = torch::empty({count}, torch::kLong);
      const auto& labels = reader->labels(options.split);
      auto* l = batch.labels.data_ptr<int64_t>();
      for (int64_t i = 0; i < count; ++i) l[i] = labels[batch.indices[i]];
    } else {
      for (const auto index : batch.indices)
        batch.boxes.push_back(reader->boxes(options.split, index));
    }
    return batch;
  }

  void produce(int64_t epoch) {
    try {
      if (cache.empty() && shard.size() * reader->info().imageBytes() <= options.cache_bytes) {
        cache.resize(shard.size() * reader->info().imageBytes());
        reader->readImages(options.split, shard.begin, shard.size(), cache.data());
      }
      const auto order = epochOrder(shard, options.shuffle, options.seed, epoch, options.rank);
      const int64_t total = batches();
      for (int64_t b = 0; b < total; ++b) {
        const int64_t first = b * options.batch_size;
        const int64_t count = std::min(options.batch_size, shard.size() - first);
        auto batch = makeBatch(order, first, count);
        std::unique_lock<std::mutex> lock(mutex);
        space.wait(lock, [&] { return stop || static_cast<int>(queue.size()) < options.prefetch; });
        if (stop) return;
        queue.push_back(std::move(batch));
        ready.notify_one();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mutex);
    finished = true;
    ready.notify_all();
  }

  void halt() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
      space.notify_all();
    }
    if (worker.joinable()) worker.join();
    queue.clear();
    stop = false;
    finished = false;
    error = nullptr;
  }
};

ShardedLoader::ShardedLoader(std::shared_ptr<const DatasetReader> reader, LoaderOptions options)
    : impl_(std::make_unique<Impl>()) {
  GEMEL_THROW_IF_NOT(options.batch_size >= 1, UsageError, "batch size {} must be positive",
                     options.batch_size);
  GEMEL_THROW_IF_NOT(reader->hasSplit(options.split), InputError, "{}: has no '{}' split",
                     reader->path(), options.split);
  impl_->reader = std::move(reader);
  impl_->options = options;
  impl_->options.prefetch = std::max(1, options.prefetch);
  impl_->shard = shardRange(impl_->reader->size(options.split), options.rank, options.world_size);
  impl_->pin = options.pin_memory && torch::cuda::is_available();
}

ShardedLoader::~ShardedLoader() { impl_->halt(); }

void ShardedLoader::startEpoch(int64_t epoch) {
  impl_->halt();
  impl_->worker = std::thread([this, epoch] { impl_->produce(epoch); });
}

std::optional<Batch> ShardedLoader::next() {
  auto& im = *impl_;
  GEMEL_ASSERT(im.worker.joinable(), "next() before startEpoch()");
  std::unique_lock<std::mutex> lock(im.mutex);
  im.ready.wait(lock, [&] { return !im.queue.empty() || im.finished; });
  if (im.error) std::rethrow_exception(im.error);
  if (im.queue.empty()) return std::nullopt;
  Batch batch = std::move(im.queue.front());
  im.queue.pop_front();
  im.space.notify_one();
  return batch;
}

int64_t ShardedLoader::shardSize() const { return impl_->shard.size(); }
int64_t ShardedLoader::batchesPerEpoch() const { return impl_->batches(); }
const DatasetInfo& ShardedLoader::info() const { return impl_->reader->info(); }

}  // namespace gemel::data
