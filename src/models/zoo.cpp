#include "gemel/models/zoo.h"

#include <map>

#include "gemel/config/workload.h"
#include "gemel/core/error.h"
#include "gemel/models/archs.h"
#include "gemel/models/darknet_cfg.h"
#include "gemel/models/faster_rcnn.h"
#include "gemel/models/ssd.h"
#include "model_impl.h"

namespace gemel::models {

std::unique_ptr<Model> createZooModel(const std::string& arch, int num_classes) {
  if (isFasterRcnnArch(arch)) {  // torchvision's builder's defaults for the arch
    const int min_size = arch == "fasterrcnn_mobilenet_v3_large_320_fpn" ? 320 : 800;
    return makeFasterRcnnModel(
        arch, num_classes,
        rcnnSettingsFor(min_size, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}, arch));
  }
  if (isSsdArch(arch))
    return makeSsdModel(
        arch, num_classes,
        ssdSettingsFor(arch, ssdDefaultSize(arch), ssdDefaultMean(arch), ssdDefaultStd(arch)));
  GEMEL_THROW_IF_NOT(isZooArch(arch), ConfigError, "arch '{}' is not a zoo architecture; known: {}",
                     arch, knownArchList());
  GEMEL_THROW_IF_NOT(num_classes >= 1, ConfigError,
                     "arch '{}': num_classes is {}; expected an integer >= 1", arch, num_classes);
  if (isDarknetArch(arch)) return createDarknetModel(arch, darknetForArch(arch, num_classes));
  std::shared_ptr<NetImpl> net;
  if (arch.rfind("resnet", 0) == 0) {
    net = makeResNet(arch, num_classes);
  } else if (arch.rfind("vgg", 0) == 0) {
    net = makeVgg(arch, num_classes);
  } else if (arch.rfind("mobilenet_v3", 0) == 0) {
    net = makeMobileNetV3(arch, num_classes);
  } else if (arch == "inception_v3") {
    net = makeInceptionV3(num_classes);
  } else {
    net = makeMobileNetV2(num_classes);
  }
  auto model = std::make_unique<ZooModel>(arch, std::move(net));
  // Inception-v3's auxiliary head is never run (inception.cpp): no gradient, nothing to share.
  if (arch == "inception_v3") model->freeze({"AuxLogits."}, "");
  return model;
}

std::unique_ptr<Model> loadScriptModel(const std::string& path) {
  GEMEL_THROW_IF_NOT(isTorchScriptFile(path), InputError,
                     "{}: is not a TorchScript module (it looks like a torch.save file); save the "
                     "model with torch.jit.save(torch.jit.script(model), path), or give its arch",
                     path);
  try {
    return std::make_unique<ScriptModel>(path, torch::jit::load(path, torch::kCPU));
  } catch (const c10::Error& e) {
    throw InputError(format("{}: the TorchScript module cannot be loaded: {}", path,
                            e.what_without_backtrace()));
  }
}

std::unique_ptr<Model> createTaskModel(const std::string& arch, int num_classes, int image_size,
                                       const std::vector<double>& mean,
                                       const std::vector<double>& std) {
  if (isSsdArch(arch))
    return makeSsdModel(arch, num_classes + 1, ssdSettingsFor(arch, image_size, mean, std));
  if (!isFasterRcnnArch(arch)) return createZooModel(arch, num_classes);
  return makeFasterRcnnModel(arch, num_classes + 1, rcnnSettingsFor(image_size, mean, std, arch));
}

namespace {

// The classifier's name of a detector body tensor ("" when the tensor is not the body's).
std::string classifierName(const std::string& arch, const std::string& name) {
  auto after = [&](const std::string& prefix) {
    return name.compare(0, prefix.size(), prefix) == 0 ? name.substr(prefix.size()) : "";
  };
  if (arch == "fasterrcnn_resnet50_fpn") return after("backbone.body.");
  if (arch.rfind("fasterrcnn_mobilenet_v3_large", 0) == 0) {
    const auto rest = after("backbone.body.");
    return rest.empty() ? "" : "features." + rest;
  }
  const auto rest = after("backbone.");
  const auto dot = rest.find('.');
  if (rest.empty() || dot == std::string::npos) return "";
  const auto index = rest.substr(0, dot), leaf = rest.substr(dot);
  if (arch.find("resnet") == std::string::npos) return "features." + index + leaf;
  static const std::map<std::string, std::string> children{{"0", "conv1"},  {"1", "bn1"},
                                                           {"4", "layer1"}, {"5", "layer2"},
                                                           {"6", "layer3"}, {"7", "layer4"}};
  const auto it = children.find(index);
  return it == children.end() ? "" : it->second + leaf;
}

}  // namespace

void loadBackboneWeights(Model& detector, const StateDict& classifier, const std::string& source) {
  const std::map<std::string, torch::Tensor> given(classifier.begin(), classifier.end());
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
  std::vector<std::string> problems;
  for (const auto& [name, dest] : detector.stateDict()) {
    const auto from = classifierName(detector.arch(), name);
    if (from.empty()) continue;
    const auto it = given.find(from);
    if (it == given.end()) {
      if (!frozenBatchNormCounter(from, given))  // the model's counter stays as it is
        problems.push_back(from + " (for " + name + ") is missing");
      continue;
    }
    if (it->second.sizes() != dest.sizes()) {
      problems.push_back(format("{} (for {}) is {}, the detector's {}", from, name,
                                it->second.sizes(), dest.sizes()));
      continue;
    }
    copies.emplace_back(dest, it->second);
  }
  if (!problems.empty()) {
    std::string list;
    for (std::size_t k = 0; k < problems.size() && k < 4; ++k) list += "\n  " + problems[k];
    if (problems.size() > 4) list += format("\n  ... {} more", problems.size() - 4);
    throw InputError(format(
        "{}: not the state_dict of the classifier that arch '{}' is built on ({} body tensors "
        "do not fit; expected torchvision's {} names and shapes):{}",
        source, detector.arch(), problems.size(),
        detector.arch() == "fasterrcnn_resnet50_fpn" ? std::string("resnet50")
        : detector.arch().rfind("fasterrcnn_mobilenet_v3_large", 0) == 0
            ? "mobilenet_v3_large"
            : detector.arch().substr(11),
        list));
  }
  torch::NoGradGuard no_grad;
  for (auto& [dest, src] : copies) dest.copy_(src);
}

FreezeSpec freezeSpec(const config::TaskConfig& task, const StateDict& weights) {
  FreezeSpec spec;
  if (task.arch != "fasterrcnn_resnet50_fpn") return spec;
  const std::string body = "backbone.body.";
  if (task.frozen_batchnorm) {
    spec.frozen_batchnorm = *task.frozen_batchnorm;
  } else {
    bool stats = false, counter = false;
    for (const auto& [name, t] : weights) {
      stats = stats || name == body + "bn1.running_mean";
      counter = counter || name == body + "bn1.num_batches_tracked";
    }
    spec.frozen_batchnorm = !task.weights_backbone.empty() || (stats && !counter);
  }
  spec.trainable_backbone_layers =
      task.trainable_backbone_layers.value_or(spec.frozen_batchnorm ? 3 : 5);
  // torchvision's _resnet_fpn_extractor: the stages that train, from the top.
  const std::vector<std::string> stages{"layer4", "layer3", "layer2", "layer1", "conv1"};
  for (std::size_t k = static_cast<std::size_t>(spec.trainable_backbone_layers); k < stages.size();
       ++k)
    spec.prefixes.push_back(body + stages[k] + ".");
  if (spec.trainable_backbone_layers < 5) spec.prefixes.push_back(body + "bn1.");
  if (spec.frozen_batchnorm) spec.batchnorm_prefix = body;
  return spec;
}

std::unique_ptr<Model> buildTaskModel(const config::TaskConfig& task) {
  if (task.arch == kTorchScriptArch) return loadScriptModel(task.weights);
  // A Faster R-CNN task's num_classes counts its object classes; torchvision's model counts
  // the background too.
  const bool rcnn = isTorchvisionDetectorArch(task.arch);
  auto model = isFasterRcnnArch(task.arch) && !task.sampling.empty()
                   ? makeFasterRcnnModel(task.arch, task.num_classes + 1, rcnnSettingsFor(task))
                   : createTaskModel(task.arch, task.num_classes, task.image_size,
                                     task.transforms.mean, task.transforms.std);
  if (!task.weights.empty()) {
    try {
      const auto& w = task.weights;
      if (isDarknetArch(task.arch) && w.size() > 8 && w.compare(w.size() - 8, 8, ".weights") == 0) {
        model->loadStateDict(readDarknetWeights(w, darknetForArch(task.arch, task.num_classes)),
                             {task.skip_head, w});
        return model;
      }
      const auto file = readWeightsFile(task.weights);
      checkWeightsArch(file, task.weights, task.arch);
      const auto& state = file.state;
      model->loadStateDict(state, {task.skip_head, task.weights});
      const auto spec = freezeSpec(task, state);
      if (spec.any()) model->freeze(spec.prefixes, spec.batchnorm_prefix);
      return model;
    } catch (const InputError& e) {
      // Only the head differs: say how a detector counts its classes.
      const bool head =
          rcnn && std::string(e.what()).find("check num_classes") != std::string::npos;
      throw InputError(format("task '{}' (key weights): {}{}", task.name, e.what(),
                              head ? " (a detection task's num_classes counts its object "
                                     "classes: its predictor has num_classes + 1 outputs, the "
                                     "background included)"
                                   : ""));
    }
  }
  if (!task.weights_backbone.empty()) {
    try {
      loadBackboneWeights(*model, readStateDict(task.weights_backbone), task.weights_backbone);
    } catch (const InputError& e) {
      throw InputError(format("task '{}' (key weights_backbone): {}", task.name, e.what()));
    }
  }
  const auto spec = freezeSpec(task);
  if (spec.any()) model->freeze(spec.prefixes, spec.batchnorm_prefix);
  return model;
}

}  // namespace gemel::models
