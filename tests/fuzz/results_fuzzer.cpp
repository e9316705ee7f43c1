// The results reader (results.h5 of gemel merge) on arbitrary files, with the tables that
// simulate and profile derive from it.
#include "fuzz_input.h"
#include "gemel/io/results.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& path = gemel::fuzz::writeInput(data, size, ".h5");
  return gemel::fuzz::expectOnlyGemelErrors([&] {
    const auto r = gemel::io::readResults(path);
    (void)gemel::io::weightBlocks(r);
    for (const auto& t : r.tasks) (void)gemel::io::fullStateDict(r, t.name);
  });
}
