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

// A zoo architecture with torchvision's default initialisation and `num_classes` outputs.
// Throws ConfigError for an unknown arch (listing the known ones).
std::unique_ptr<Model> createZooModel(const std::string& arch, int num_classes);

// A Darknet network (the YOLOv3 family) from its parsed cfg, with PyTorch-YOLOv3's module and
// parameter names. Its forward returns every yolo head's raw output, concatenated:
// [N, sum over heads of anchors * ny * nx, 5 + classes].
std::unique_ptr<Model> createDarknetModel(const std::string& arch, const DarknetNet& net);

// A TorchScript classification module saved with torch.jit.save.
std::unique_ptr<Model> loadScriptModel(const std::string& path);

// The task's model with its weights loaded (when it has weights).
std::unique_ptr<Model> buildTaskModel(const config::TaskConfig& task);

}  // namespace gemel::models
