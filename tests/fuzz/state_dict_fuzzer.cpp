// The torch.save reader (zip archive, pickle, tensor records) on arbitrary files.
#include "fuzz_input.h"
#include "gemel/models/state_dict.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& path = gemel::fuzz::writeInput(data, size, ".pt");
  return gemel::fuzz::expectOnlyGemelErrors([&] {
    const auto state = gemel::models::readStateDict(path);
    for (const auto& [name, tensor] : state) (void)tensor.sum();  // every tensor's bytes are real
  });
}
