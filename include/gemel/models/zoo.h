#pragma once
// Building models by name or from a task's configuration.
#include <memory>
#include <string>
#include <vector>

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

// A task's model without weights: createZooModel(arch, num_classes), except for a Faster R-CNN,
// whose num_classes counts its object classes (torchvision's model gets num_classes + 1, the
// background included) and whose transform takes its sizes from image_size and its
// normalisation from mean and std (rcnnSettingsFor).
std::unique_ptr<Model> createTaskModel(const std::string& arch, int num_classes, int image_size,
                                       const std::vector<double>& mean = {0.485, 0.456, 0.406},
                                       const std::vector<double>& std = {0.229, 0.224, 0.225});

// torchvision's weights_backbone: a classifier's state_dict (torchvision's names: resnet50's
// for fasterrcnn_resnet50_fpn, the named backbone's for fasterrcnn:<backbone>) copied into the
// detector's body: conv1, bn1, layer1..4 -> backbone.body.* (FPN) or backbone.0, 1, 4..7
// (the original Gemel's nn.Sequential of the ResNet's children); features.N -> backbone.N
// (VGG, MobileNetV2). The head (fc, classifier) is not used. A file that lacks a body tensor or
// has it in another shape is an InputError naming `source` and the tensors, and nothing is
// copied.
void loadBackboneWeights(Model& detector, const StateDict& classifier, const std::string& source);

// What a task freezes while it trains (Model::freeze), as torchvision's
// fasterrcnn_resnet50_fpn fine-tunes from pretrained weights: with frozen BatchNorm
// (task.frozen_batchnorm, else whether it starts from weights_backbone or from weights in
// FrozenBatchNorm2d's layout: the body's BatchNorm statistics without num_batches_tracked) the
// body's BatchNorm is frozen; of the
// body's stages layer4, layer3, layer2, layer1, conv1, the first trainable_backbone_layers
// train (default 3 with frozen BatchNorm, else 5; bn1's affine trains with all 5) and the
// others' parameters take no gradient. Other archs freeze nothing.
struct FreezeSpec {
  bool frozen_batchnorm = false;
  int trainable_backbone_layers = 5;
  std::vector<std::string> prefixes;  // frozen parameters
  std::string batchnorm_prefix;       // frozen BatchNorm layers ("" when none)
  bool any() const { return frozen_batchnorm || !prefixes.empty(); }
};
FreezeSpec freezeSpec(const config::TaskConfig& task, const StateDict& weights = {});

// The task's model with its weights loaded (when it has weights), frozen as freezeSpec says.
std::unique_ptr<Model> buildTaskModel(const config::TaskConfig& task);

}  // namespace gemel::models
