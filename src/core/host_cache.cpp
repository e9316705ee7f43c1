#include "gemel/core/host_cache.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <list>
#include <map>
#include <mutex>

namespace gemel {
namespace {

constexpr std::size_t kAlign = std::size_t(2) << 20;  // one transparent huge page

// The size class of a request: rounded up to 1/8 of its power of two, then to 2 MiB.
std::size_t sizeClass(std::size_t n) {
  std::size_t top = kHostCacheMinBytes;
  while (top < n) top <<= 1;
  const std::size_t step = std::max(kAlign, top / 8);
  return (n + step - 1) / step * step;
}

class HostCache final : public c10::Allocator {
 public:
  explicit HostCache(std::size_t limit) : limit_(limit), caching_(limit > 0) {}

  // Every block carries a header just before its data (LibTorch's raw allocation interface
  // needs one deleter for all of them): small blocks come from posix_memalign, large ones
  // from the cache.
  c10::DataPtr allocate(std::size_t n) override {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (n == 0) return {nullptr, nullptr, &HostCache::free, cpu};
    void* base = nullptr;
    std::size_t size = 0;
    if (n + kHeader < kHostCacheMinBytes || !caching_.load(std::memory_order_relaxed)) {
      if (posix_memalign(&base, kHeader, n + kHeader) != 0) base = nullptr;
      TORCH_CHECK(base != nullptr, "gemel host allocator: out of memory allocating ", n, " bytes");
    } else {
      size = sizeClass(n + kHeader);
      base = take(size);
      if (!base) base = map(size);
    }
    auto* header = static_cast<Header*>(base);
    header->magic = kMagic;
    header->size = size;
    void* p = static_cast<char*>(base) + kHeader;
    return {p, p, &HostCache::free, cpu};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &HostCache::free; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // 0: no caching at all (large blocks come from posix_memalign too, unrounded).
  void setLimit(std::size_t limit) {
    const std::lock_guard<std::mutex> lock(mutex_);
    limit_ = limit;
    caching_.store(limit > 0, std::memory_order_relaxed);
    trimTo(limit_);
  }

  HostCacheStats stats() {
    const std::lock_guard<std::mutex> lock(mutex_);
    HostCacheStats s;
    s.installed = true;
    s.limit_bytes = limit_;
    s.hits = hits_;
    s.misses = misses_;
    s.idle_bytes = idle_bytes_;
    s.live_bytes = live_bytes_;
    return s;
  }

  void release() {
    const std::lock_guard<std::mutex> lock(mutex_);
    trimTo(0);
  }

  static HostCache* instance;

 private:
  // Before each block's data; kHeader keeps the data 64-byte aligned, as LibTorch's own
  // allocator does.
  struct Header {
    uint64_t magic;
    std::size_t size;  // the large block's size class; 0: a small block
  };
  static constexpr std::size_t kHeader = 64;
  static constexpr uint64_t kMagic = 0x67656d656c484331ULL;  // "gemelHC1"

  struct Idle {
    void* ptr;
    std::size_t size;
  };

  // An idle block of this class, or null.
  void* take(std::size_t size) {
    const std::lock_guard<std::mutex> lock(mutex_);
    const auto [first, last] = by_size_.equal_range(size);
    if (first == last) return nullptr;
    const auto it = std::prev(last);  // the newest of its class: the likeliest in the caches
    const auto block = it->second;
    by_size_.erase(it);
    void* p = block->ptr;
    age_.erase(block);
    sizes_[p] = size;
    idle_bytes_ -= size;
    live_bytes_ += size;
    ++hits_;
    return p;
  }

  void* map(std::size_t size) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      // Over-map by one alignment unit and trim, so the block starts on a huge page.
      const std::size_t span = size + kAlign;
      void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (raw != MAP_FAILED) {
        auto base = reinterpret_cast<uintptr_t>(raw);
        const uintptr_t start = (base + kAlign - 1) / kAlign * kAlign;
        if (start > base) munmap(raw, start - base);
        const uintptr_t end = start + size, stop = base + span;
        if (stop > end) munmap(reinterpret_cast<void*>(end), stop - end);
        void* p = reinterpret_cast<void*>(start);
        madvise(p, size, MADV_HUGEPAGE);  // advice only: fine where THP is off
        const std::lock_guard<std::mutex> lock(mutex_);
        sizes_[p] = size;
        live_bytes_ += size;
        ++misses_;
        return p;
      }
      if (attempt == 0) release();  // give the idle blocks back, then try once more
    }
    TORCH_CHECK(false, "gemel host cache: cannot map ", size, " bytes: ", std::strerror(errno),
                " (out of memory: lower the batch size or the image size)");
  }

  static void free(void* p) {
    if (!p) return;
    void* base = static_cast<char*>(p) - kHeader;
    const auto* header = static_cast<const Header*>(base);
    TORCH_CHECK(header->magic == kMagic,
                "gemel host allocator: freeing a block it did not hand out");
    if (header->size == 0) {
      std::free(base);
    } else {
      instance->giveBack(base);
    }
  }

  void giveBack(void* p) {
    std::size_t size = 0;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      const auto it = sizes_.find(p);
      TORCH_CHECK(it != sizes_.end(), "gemel host allocator: a large block it does not know");
      size = it->second;
      sizes_.erase(it);
      live_bytes_ -= size;
      if (size <= limit_) {
        trimTo(limit_ - size);
        age_.push_back({p, size});
        by_size_.emplace(size, std::prev(age_.end()));
        idle_bytes_ += size;
        return;
      }
    }
    munmap(p, size);
  }

  // Unmaps the oldest idle blocks until at most `bytes` are idle. Holds mutex_.
  void trimTo(std::size_t bytes) {
    while (idle_bytes_ > bytes && !age_.empty()) {
      const auto oldest = age_.begin();
      for (auto [it, end] = by_size_.equal_range(oldest->size); it != end; ++it) {
        if (it->second == oldest) {
          by_size_.erase(it);
          break;
        }
      }
      munmap(oldest->ptr, oldest->size);
      idle_bytes_ -= oldest->size;
      age_.erase(oldest);
    }
  }

  std::mutex mutex_;
  std::size_t limit_;
  std::atomic<bool> caching_;
  std::list<Idle> age_;                                            // idle blocks, oldest first
  std::multimap<std::size_t, std::list<Idle>::iterator> by_size_;  // the same, by class
  std::map<void*, std::size_t> sizes_;                             // live blocks
  std::size_t idle_bytes_ = 0, live_bytes_ = 0;
  int64_t hits_ = 0, misses_ = 0;
};

HostCache* HostCache::instance = nullptr;

std::size_t defaultLimit() {
  if (const char* mb = std::getenv("GEMEL_HOST_CACHE_MB")) {
    char* end = nullptr;
    const auto v = std::strtoull(mb, &end, 10);
    if (end != mb && *end == '\0') return static_cast<std::size_t>(v) << 20;
  }
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0
             ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) / 4
             : std::size_t(1) << 30;
}

}  // namespace

bool installHostCache(std::size_t limit_bytes) {
  static std::mutex once;
  const std::lock_guard<std::mutex> lock(once);
  const char* choice = std::getenv("GEMEL_MALLOC");
  if (choice != nullptr && std::strcmp(choice, "system") == 0) return false;
  const std::size_t limit = limit_bytes > 0 ? limit_bytes : defaultLimit();
  if (HostCache::instance) {
    HostCache::instance->setLimit(limit);
    return limit > 0;
  }
  if (limit == 0) return false;
  // Never destroyed: tensors freed during static destruction still find it.
  HostCache::instance = new HostCache(limit);
  c10::SetCPUAllocator(HostCache::instance, /*priority=*/100);
  return true;
}

void shareHostCache(int processes) {
  if (!HostCache::instance || processes <= 1 || std::getenv("GEMEL_HOST_CACHE_MB")) return;
  if (HostCache::instance->stats().limit_bytes == 0) return;  // off stays off
  HostCache::instance->setLimit(defaultLimit() / static_cast<std::size_t>(processes));
}

void disableHostCache() {
  if (HostCache::instance) HostCache::instance->setLimit(0);
}

HostCacheStats hostCacheStats() {
  return HostCache::instance ? HostCache::instance->stats() : HostCacheStats{};
}

void releaseHostCache() {
  if (HostCache::instance) HostCache::instance->release();
}

}  // namespace gemel
