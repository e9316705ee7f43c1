#pragma once
// The host allocator for training: glibc returns every large freed block to the kernel (mmap
// above 128 KiB by default, heap trimmed above 128 KiB), so each training step page-faults its
// activations and gradients in afresh. tuneHostAllocator() keeps freed blocks up to 32 MiB in the
// heap and never trims it, so later steps reuse warm pages. (On the 2-core box the gain for
// four ResNets at 64 px was 0 to 4%, within run-to-run noise.) The user's own MALLOC_* settings,
// or GEMEL_MALLOC=system, leave glibc as it is.
namespace gemel {

// Returns whether it changed anything.
bool tuneHostAllocator();

}  // namespace gemel
