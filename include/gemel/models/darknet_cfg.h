#pragma once
// Darknet network definitions (.cfg): the YOLOv3 family's file format. Parsed and checked
// without LibTorch: each layer's type, options and channel counts, so that a malformed file is
// one error naming `file:line` before any model is built. The model builder takes it from here.
#include <cstdint>
#include <string>
#include <vector>

namespace gemel::models {

enum class DarknetLayerType { kConvolutional, kShortcut, kRoute, kUpsample, kMaxpool, kYolo };

struct DarknetLayer {
  DarknetLayerType type = DarknetLayerType::kConvolutional;
  int line = 0;  // of its [section] header
  // convolutional
  int filters = 0, size = 1, stride = 1, padding = 0;
  bool batch_normalize = false;
  std::string activation = "linear";  // leaky | linear
  // shortcut: the absolute index added to the previous layer's output; route: absolute indices
  // whose outputs are concatenated on channels.
  int from = -1;
  std::vector<int> layers;
  // yolo
  std::vector<int> mask;
  std::vector<std::pair<int, int>> anchors;  // every anchor of the file, (w, h) in pixels
  int classes = 0;
  // Channels in and out; spatial stride relative to the input (1, 2, 4, ...).
  int in_channels = 0, out_channels = 0, scale = 1;
};

struct DarknetNet {
  std::string source;  // the file, for messages
  int width = 416, height = 416, channels = 3;
  std::vector<DarknetLayer> layers;
  int classes() const;  // of the yolo layers (all alike)
  // Trainable parameters: convolution weights, a bias where there is no BatchNorm, BatchNorm
  // weight and bias.
  int64_t parameterCount() const;
};

// `num_classes` > 0 sets every yolo layer's classes and the filters of the convolution before
// it (len(mask) * (5 + classes)); 0 keeps the file's. Throws ConfigError naming `file:line`.
DarknetNet parseDarknetCfg(const std::string& path, int num_classes = 0);
DarknetNet parseDarknetCfgText(const std::string& text, const std::string& source,
                               int num_classes = 0);

// The network as a .cfg file (what export writes beside a .weights file): every layer with its
// options, and the [net] hyperparameters PyTorch-YOLOv3 requires. Parses back to `net`.
std::string renderDarknetCfg(const DarknetNet& net);

// Darknet arch names: "yolov3" and "yolov3-tiny" (the cfgs under configs/models/, built in) and
// "darknet:<path to a .cfg>".
bool isDarknetArch(const std::string& arch);
DarknetNet darknetForArch(const std::string& arch, int num_classes);

}  // namespace gemel::models
