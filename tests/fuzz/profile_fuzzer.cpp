// The profile reader (gemel profile's P.h5) on arbitrary files, and the scheduler's models built
// from what it read.
#include "fuzz_input.h"
#include "gemel/edge/profile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& path = gemel::fuzz::writeInput(data, size, ".h5");
  return gemel::fuzz::expectOnlyGemelErrors([&] {
    const auto p = gemel::edge::readProfile(path);
    for (bool merged : {true, false}) (void)gemel::edge::modelProfiles(p, merged);
  });
}
