#include "gemel/core/error.h"

#include <cstdio>
#include <cstdlib>

#include "gemel/core/log.h"

namespace gemel {

void assertionFailed(const char* expr, const char* file, int line, const std::string& message) {
  std::fprintf(stderr, "[rank %d] gemel internal error: assertion '%s' failed at %s:%d%s%s\n",
               log::rank(), expr, file, line, message.empty() ? "" : ": ", message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace gemel
