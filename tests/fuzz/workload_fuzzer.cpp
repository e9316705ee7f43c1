// The workload parser and validator on arbitrary YAML.
#include "fuzz_input.h"
#include "gemel/config/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& path = gemel::fuzz::writeInput(data, size, ".yaml");
  return gemel::fuzz::expectOnlyGemelErrors([&] { (void)gemel::config::loadWorkload(path); });
}
