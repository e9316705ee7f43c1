#pragma once
// What every harness shares: the input written to a file (the readers take paths, as users give
// them), and the rule that a bad input may end only in a gemel::Error. Anything else (another
// exception, a crash, a sanitizer report) is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

#include "gemel/core/error.h"
#include "gemel/core/log.h"

namespace gemel::fuzz {

// A file of this process's own (in /dev/shm when it exists), rewritten for every input.
inline const std::string& inputPath(const char* extension) {
  static const std::string path = [extension] {
    const std::filesystem::path dir =
        std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    return (dir / ("gemel-fuzz-" + std::to_string(getpid()) + extension)).string();
  }();
  return path;
}

inline const std::string& writeInput(const uint8_t* data, size_t size, const char* extension) {
  const auto& path = inputPath(extension);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

template <typename Fn>
int expectOnlyGemelErrors(Fn&& fn) {
  static const bool quiet = [] {
    log::setLevel(log::Level::kOff);
    return true;
  }();
  (void)quiet;
  try {
    fn();
  } catch (const gemel::Error& e) {
    // the clear error a user gets: fine (GEMEL_FUZZ_SHOW=1 prints it, to triage an input)
    if (std::getenv("GEMEL_FUZZ_SHOW") != nullptr)
      std::fprintf(stderr, "gemel error: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "finding: an exception that is not a gemel::Error: %s\n", e.what());
    std::abort();
  }
  return 0;
}

}  // namespace gemel::fuzz
