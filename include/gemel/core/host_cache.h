#pragma once
// A caching allocator for LibTorch's large CPU tensors. glibc serves a block above its mmap
// threshold (at most 32 MiB, even after tuneHostAllocator) with a fresh mmap and unmaps it when
// it is freed, so every step of training at 224 px, or every augmented batch of 64 images at
// 224 px (38.5 MB), page-faults its memory in again: the kernel zeroes each page on first
// touch. Measured on the 2-core box: the device-side augmentation of a 224 px batch took 55 ms
// with a fresh buffer and 15 ms with a reused one.
//
// installHostCache() puts an allocator in front of LibTorch's CPU allocator: blocks of
// kMinBytes or more are mapped once (2 MiB-aligned, with transparent huge pages advised),
// rounded up to a size class (1/8 steps), and kept when their tensor is freed, for the next
// request of that class; smaller blocks come from posix_memalign, as LibTorch's own allocator
// does (every block has a small header naming its kind: one deleter serves both). The idle
// blocks held are capped (`limit_bytes`; the oldest are unmapped first), and every idle block is
// released before an allocation is allowed to fail.
//
// Environment: GEMEL_HOST_CACHE_MB sets the cap (0 turns the cache off); GEMEL_MALLOC=system
// leaves LibTorch's allocator alone, as it leaves glibc alone. Torch-free header.
#include <cstddef>
#include <cstdint>

namespace gemel {

struct HostCacheStats {
  bool installed = false;
  std::size_t limit_bytes = 0;
  int64_t hits = 0, misses = 0;  // large allocations served from the cache / mapped afresh
  std::size_t idle_bytes = 0;    // held for reuse now
  std::size_t live_bytes = 0;    // handed out and not yet freed
};

constexpr std::size_t kHostCacheMinBytes = std::size_t(4) << 20;

// Installs the cache (once per process; later calls only change the cap). limit_bytes 0: the
// default, a quarter of physical memory, or GEMEL_HOST_CACHE_MB. Returns whether it is active.
bool installHostCache(std::size_t limit_bytes = 0);
HostCacheStats hostCacheStats();
// The default cap split between the gemel processes on this node (the MPI ranks there), as
// the CPU threads are; a cap given by GEMEL_HOST_CACHE_MB is each process's own.
void shareHostCache(int processes);
// From now on every block is allocated and freed as LibTorch's own allocator would (no size
// classes, no huge-page alignment, nothing kept): for measuring what models occupy (gemel
// profile), where the cache's rounding would count as theirs.
void disableHostCache();
// Unmaps every idle block (for tests, and before a long pause).
void releaseHostCache();

}  // namespace gemel
