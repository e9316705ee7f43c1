#include "gemel/core/memory.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace gemel {

bool tuneHostAllocator() {
  const char* choice = std::getenv("GEMEL_MALLOC");
  if (choice != nullptr && std::strcmp(choice, "system") == 0) return false;
  for (const char* user : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"}) {
    if (std::getenv(user) != nullptr) return false;
  }
  bool ok = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;  // glibc's largest on 64-bit
  ok = mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1 && ok;
  ok = mallopt(M_TOP_PAD, 64 << 20) == 1 && ok;
  return ok;
}

}  // namespace gemel
