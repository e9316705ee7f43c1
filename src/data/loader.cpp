#include "gemel/data/loader.h"

#include <torch/torch.h>

#include <sys/mman.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "gemel/core/error.h"
#include "gemel/data/shard.h"

namespace gemel::data {
namespace {

// Host memory for the shard cache and batch buffers, aligned to 2 MiB and advised to use
// transparent huge pages: on VMs a 4 KiB page fault costs microseconds, and a 224x224 shard is
// hundreds of MB. Not zero-filled (the reader overwrites it).
class HostBuffer {
 public:
  HostBuffer() = default;
  explicit HostBuffer(std::size_t bytes) : bytes_(bytes) {
    constexpr std::size_t kAlign = std::size_t(2) << 20;
    const std::size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
    void* p = nullptr;
    GEMEL_THROW_IF_NOT(posix_memalign(&p, kAlign, rounded) == 0, InputError,
                       "cannot allocate {} MB of host memory for the loader", rounded >> 20);
#ifdef MADV_HUGEPAGE
    madvise(p, rounded, MADV_HUGEPAGE);
#endif
    data_.reset(static_cast<uint8_t*>(p));
  }
  uint8_t* data() const { return data_.get(); }
  std::size_t size() const { return bytes_; }
  bool empty() const { return bytes_ == 0; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data_;
  std::size_t bytes_ = 0;
};

// Batch buffers recycled across batches and epochs: a batch tensor wraps a pooled buffer and
// hands it back when the last reference to it is dropped, so steady-state batches allocate
// (and fault in) nothing.
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  explicit BufferPool(std::size_t bytes) : bytes_(bytes) {}
  torch::Tensor tensor(at::IntArrayRef sizes) {
    HostBuffer buffer;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        buffer = std::move(free_.back());
        free_.pop_back();
      }
    }
    if (buffer.empty()) buffer = HostBuffer(bytes_);
    auto* raw = new HostBuffer(std::move(buffer));
    std::weak_ptr<BufferPool> pool = shared_from_this();
    return torch::from_blob(
        raw->data(), sizes,
        [raw, pool](void*) {
          if (auto p = pool.lock()) p->release(std::move(*raw));
          delete raw;
        },
        torch::kUInt8);
  }

 private:
  void release(HostBuffer buffer) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(std::move(buffer));
  }
  std::size_t bytes_;
  std::mutex mutex_;
  std::vector<HostBuffer> free_;
};

}  // namespace

struct ShardedLoader::Impl {
  std::shared_ptr<const DatasetReader> reader;
  LoaderOptions options;
  ShardRange shard;
  bool pin = false;
  HostBuffer cache;                  // the shard's images when they fit in cache_bytes
  std::shared_ptr<BufferPool> pool;  // batch buffers (unpinned memory)

  std::mutex mutex;
  std::condition_variable ready, space;
  std::deque<Batch> queue;
  bool finished = false;  // producer reached the end of the epoch
  bool stop = false;
  std::exception_ptr error;
  std::thread worker;

  // Whether the split's example `index` is in the part this loader reads.
  bool inPart(int64_t index) const {
    const int k = options.holdout_every;
    if (k <= 0) return true;
    return (index % k == k - 1) == options.held_out;
  }
  int64_t part_size = 0;  // examples of the shard in the part (set once, at construction)
  int64_t batches() const {
    const int64_t n = part_size, b = options.batch_size;
    return options.drop_last ? n / b : (n + b - 1) / b;
  }

  Batch makeBatch(const std::vector<int64_t>& order, int64_t first, int64_t count) {
    const auto& info = reader->info();
    const int64_t bytes = info.imageBytes();
    const std::vector<int64_t> sizes = {count, info.height, info.width, info.channels};
    Batch batch;
    if (pin) {
      // LibTorch's caching host allocator recycles pinned blocks itself.
      batch.images =
          torch::empty(sizes, torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(true));
    } else {
      if (!pool) pool = std::make_shared<BufferPool>(options.batch_size * bytes);
      batch.images = pool->tensor(sizes);
    }
    auto* out = batch.images.data_ptr<uint8_t>();
    batch.indices.assign(order.begin() + first, order.begin() + first + count);
    for (int64_t i = 0; i < count;) {
      const int64_t index = batch.indices[i];
      if (!cache.empty()) {
        std::memcpy(out + i * bytes, cache.data() + (index - shard.begin) * bytes, bytes);
        ++i;
        continue;
      }
      // Uncached: read runs of consecutive indices (unshuffled order) in one call.
      int64_t run = 1;
      while (i + run < count && batch.indices[i + run] == index + run) ++run;
      reader->readImages(options.split, index, run, out + i * bytes);
      i += run;
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

  void produce(int64_t epoch, int64_t first_batch) {
    try {
      if (cache.empty() && shard.size() * reader->info().imageBytes() <= options.cache_bytes) {
        cache = HostBuffer(shard.size() * reader->info().imageBytes());
        reader->readImages(options.split, shard.begin, shard.size(), cache.data());
      }
      auto order = epochOrder(shard, options.shuffle, options.seed, epoch, options.rank);
      if (options.holdout_every > 0) {
        order.erase(
            std::remove_if(order.begin(), order.end(), [this](int64_t i) { return !inPart(i); }),
            order.end());
      }
      const int64_t total = batches();
      for (int64_t b = first_batch; b < total; ++b) {
        const int64_t first = b * options.batch_size;
        const int64_t count =
            std::min(options.batch_size, static_cast<int64_t>(order.size()) - first);
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
  for (int64_t i = impl_->shard.begin; i < impl_->shard.end; ++i)
    impl_->part_size += impl_->inPart(i);
  impl_->pin = options.pin_memory && torch::cuda::is_available();
}

ShardedLoader::~ShardedLoader() { impl_->halt(); }

void ShardedLoader::startEpoch(int64_t epoch, int64_t first_batch) {
  impl_->halt();
  impl_->worker = std::thread([this, epoch, first_batch] { impl_->produce(epoch, first_batch); });
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

int64_t ShardedLoader::shardSize() const { return impl_->part_size; }
int64_t ShardedLoader::batchesPerEpoch() const { return impl_->batches(); }
const DatasetInfo& ShardedLoader::info() const { return impl_->reader->info(); }

}  // namespace gemel::data
