#pragma once
// Building models by name or from a task's configuration.
#include <memory>
#include <string>

#include "gemel/models/model.h"

namespace gemel::config {
struct TaskConfig;
}

namespace gemel::models {

struct DarknetNet;
struct DarknetLayer;

// A zoo architecture with torchvision's default initialisation and `num_classes` outputs.
// Throws ConfigError for an unknown arch (listing the known ones).
std::unique_ptr<Model> createZooModel(const std::string& arch, int num_classes);

// A Darknet network (the YOLOv3 family) from its parsed cfg, with PyTorch-YOLOv3's module and
// parameter names. Its forward returns every yolo head's raw output, concatenated:
// [N, sum over heads of anchors * ny * nx, 5 + classes].
std::unique_ptr<Model> createDarknetModel(const std::string& arch, const DarknetNet& net);

// Darknet .weights files: a header (major, minor, revision as int32, then the images seen: int64
// from version 0.2 on, int32 before), then per convolution in layer order, float32: the
// BatchNorm bias, weight, running mean and running variance (or the convolution's bias), then
// the convolution's weight. Names as PyTorch-YOLOv3's state_dict. A file whose size does not fit
// the network is an InputError saying how many values it holds and how many the cfg needs.
// A yolo layer's anchors [na, 2] (pixels, its mask's), as PyTorch-YOLOv3 keeps them.
torch::Tensor darknetAnchors(const DarknetLayer& yolo);
StateDict readDarknetWeights(const std::string& path, const DarknetNet& net);
void writeDarknetWeights(const std::string& path, const DarknetNet& net, const StateDict& state);

// A TorchScript classification module saved with torch.jit.save.
std::unique_ptr<Model> loadScriptModel(const std::string& path);

// The task's model with its weights loaded (when it has weights).
std::unique_ptr<Model> buildTaskModel(const config::TaskConfig& task);

}  // namespace gemel::models
