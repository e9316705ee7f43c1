// The Darknet cfg parser on arbitrary text (the first byte picks the number of classes).
#include <string>

#include "fuzz_input.h"
#include "gemel/models/darknet_cfg.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int classes = size > 0 ? data[0] % 8 : 0;
  const std::string text(reinterpret_cast<const char*>(data) + (size > 0), size > 0 ? size - 1 : 0);
  return gemel::fuzz::expectOnlyGemelErrors(
      [&] { (void)gemel::models::parseDarknetCfgText(text, "fuzz.cfg", classes); });
}
