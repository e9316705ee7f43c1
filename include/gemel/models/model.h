#pragma once
// A task's network: a zoo architecture (torchvision-compatible names) or a TorchScript module.
// The rest of gemel sees only this interface: forward, named tensors, and the layers with
// weights that may be shared.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "gemel/models/layer_info.h"
#include "gemel/models/state_dict.h"

namespace gemel::models {

struct LoadStateOptions {
  bool skip_head = false;  // leave the final classifier layer as initialised (fine-tuning)
  std::string source;      // file name for error messages
};

// One image's ground truth, for models that compute their own training losses (Faster R-CNN):
// boxes [K, 4] float (x1, y1, x2, y2 in the input image's pixels), labels [K] int64 in
// 1..num_classes (0 is the background, as torchvision counts).
struct BoxTargets {
  torch::Tensor boxes, labels;
};

// One image's detections, in its own pixels, best score first.
struct Detections {
  torch::Tensor boxes, scores, labels;  // [D, 4], [D], [D] int64 (1..num_classes)
};

// What a model computes for a batch. Classifiers and YOLOs fill `logits` (a YOLO's raw heads);
// a Faster R-CNN fills `losses` in training mode and `detections` in eval mode, as torchvision's
// does.
struct ModelOutput {
  torch::Tensor logits;  // [N, num_classes]
  std::vector<std::pair<std::string, torch::Tensor>> losses;
  std::vector<Detections> detections;  // per image
};

class Model {
 public:
  explicit Model(std::string arch) : arch_(std::move(arch)) {}
  virtual ~Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const std::string& arch() const { return arch_; }

  // images [N, 3, H, W] float -> the model's outputs (the task's Objective reads what its kind
  // needs). Classifiers and YOLOs take normalised images and ignore `targets`; a Faster R-CNN
  // takes images in [0, 1] (it normalises them itself) and, in training mode, needs one
  // BoxTargets per image.
  virtual ModelOutput forward(const torch::Tensor& images,
                              const std::vector<BoxTargets>* targets = nullptr) = 0;
  // Whether the model's training forward needs targets (and computes its losses itself).
  virtual bool takesTargets() const { return false; }
  virtual void train(bool on) = 0;
  virtual void to(const torch::Device& device) = 0;

  // Trainable parameters, then buffers (BatchNorm statistics), with torchvision's names.
  virtual StateDict namedParameters() const = 0;
  virtual StateDict namedBuffers() const = 0;
  StateDict stateDict() const;
  // stateDict() with every tensor copied (detached): a snapshot the model's training leaves be.
  StateDict stateDictCopy() const;
  // Makes `tensor` the parameter `name` ("layer1.0.conv1.weight") itself: forward uses it and
  // namedParameters() returns it. Two models given the same tensor share it (one TensorImpl,
  // one autograd leaf, one .grad); this is how merging ties weights. Conv and Linear
  // parameters only, with the shape the model has; throws InputError otherwise.
  virtual void setParameter(const std::string& name, const torch::Tensor& tensor) = 0;
  // Conv and Linear layers in definition order.
  virtual std::vector<LayerInfo> layers() const = 0;
  // Fine-tuning as torchvision does it from pretrained weights: parameters whose names start
  // with one of `prefixes` take no gradient, and, when `batchnorm_prefix` is not empty, the
  // BatchNorm layers under it act as torchvision's FrozenBatchNorm2d (their running statistics
  // in training too, never updated; no gradient for their weight and bias). A layer frozen
  // this way is not offered for sharing (layers() leaves it out). Zoo models only.
  virtual void freeze(const std::vector<std::string>& prefixes,
                      const std::string& batchnorm_prefix);
  // The parameter-name prefix of the classifier head ("fc."), empty when unknown.
  virtual std::string headPrefix() const = 0;
  // Whether its training forward draws random numbers (dropout), from the device's generator.
  virtual bool hasDropout() const = 0;

  // Copies `state` into this model. Every missing, unexpected or wrongly shaped key is an
  // InputError naming the key (head keys are skipped with options.skip_head).
  void loadStateDict(const StateDict& state, const LoadStateOptions& options);
  void loadWeightsFile(const std::string& path, bool skip_head);
  void saveWeightsFile(const std::string& path) const;

  int64_t parameterCount() const;
  int64_t stateBytes() const;  // parameters and buffers

 private:
  std::string arch_;
};

}  // namespace gemel::models
