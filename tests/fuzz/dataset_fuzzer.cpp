// The dataset reader on arbitrary files: open, verify every invariant, read images and boxes.
#include <vector>

#include "fuzz_input.h"
#include "gemel/data/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& path = gemel::fuzz::writeInput(data, size, ".h5");
  return gemel::fuzz::expectOnlyGemelErrors([&] {
    const gemel::data::DatasetReader reader(path);
    reader.verify();
    for (const auto& split : gemel::data::kSplits) {
      if (!reader.hasSplit(split) || reader.size(split) == 0) continue;
      const auto n = std::min<int64_t>(reader.size(split), 4);
      std::vector<uint8_t> images(static_cast<size_t>(n * reader.info().imageBytes()));
      reader.readImages(split, 0, n, images.data());
      if (reader.info().kind == gemel::data::DatasetKind::kDetection) (void)reader.boxes(split, 0);
    }
  });
}
