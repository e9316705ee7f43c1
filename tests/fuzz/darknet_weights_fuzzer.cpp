// The Darknet .weights reader on arbitrary files, against a small network (one BatchNorm
// convolution, one head with its bias, one yolo layer).
#include "fuzz_input.h"
#include "gemel/models/darknet_cfg.h"
#include "gemel/models/zoo.h"

namespace {

const char* kCfg = R"CFG([net]
width=32
height=32
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58
classes=2
num=3
)CFG";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto net = gemel::models::parseDarknetCfgText(kCfg, "fuzz.cfg", 2);
  const auto& path = gemel::fuzz::writeInput(data, size, ".weights");
  return gemel::fuzz::expectOnlyGemelErrors(
      [&] { (void)gemel::models::readDarknetWeights(path, net); });
}
