#include "pickled_module.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "gemel/core/error.h"
#include "gemel/models/archs.h"

namespace gemel::models {
namespace {

using pickle::Value;
using pickle::ValuePtr;
using Kind = Value::Kind;

// One pickled nn.Module: its class and its __dict__.
struct Module {
  std::string cls;  // "torchvision.models.resnet.ResNet"
  ValuePtr dict;    // the BUILD state (a dict)

  // The class name without its module path ("ResNet").
  std::string name() const { return cls.substr(cls.rfind('.') + 1); }
  ValuePtr attr(const std::string& key) const { return dict ? dict->get(key) : nullptr; }
  int64_t intAttr(const std::string& key, int64_t fallback) const {
    const auto v = attr(key);
    return v && v->kind == Kind::kInt ? v->i : fallback;
  }

  // Registered submodules in order (None entries, e.g. Inception's absent AuxLogits, skipped).
  std::vector<std::pair<std::string, Module>> children() const {
    std::vector<std::pair<std::string, Module>> out;
    const auto modules = attr("_modules");
    if (!modules) return out;
    for (const auto& [k, v] : modules->dict) {
      if (k->kind == Kind::kString && v->kind == Kind::kObject) out.emplace_back(k->s, of(v));
    }
    return out;
  }
  std::optional<Module> child(const std::string& key) const {
    for (auto& [k, m] : children()) {
      if (k == key) return m;
    }
    return std::nullopt;
  }

  static Module of(const ValuePtr& v) {
    return {v->s, v->state && v->state->kind == Kind::kDict ? v->state : nullptr};
  }
};

// model.state_dict(): each module's parameters, then its persistent buffers, then its children.
void collect(const Module& m, const std::string& prefix, StateDict& out) {
  std::set<std::string> non_persistent;
  if (const auto set = m.attr("_non_persistent_buffers_set")) {
    for (const auto& item : set->items) non_persistent.insert(item->s);
  }
  for (const char* slot : {"_parameters", "_buffers"}) {
    const auto entries = m.attr(slot);
    if (!entries) continue;
    for (const auto& [k, v] : entries->dict) {
      if (v->kind != Kind::kTensor) continue;  // None: a layer without bias, untracked stats
      if (std::string(slot) == "_buffers" && non_persistent.count(k->s)) continue;
      out.emplace_back(prefix + k->s, v->tensor);
    }
  }
  for (const auto& [name, child] : m.children()) collect(child, prefix + name + ".", out);
}

[[noreturn]] void unknown(const std::string& source, const std::string& cls,
                          const std::string& why) {
  throw InputError(format(
      "{}: holds a pickled {} ({}), which gemel cannot take as weights; it reads torch.save(model) "
      "of torchvision's ResNet, VGG, MobileNetV2, MobileNetV3, Inception3, Faster R-CNN and SSD "
      "models. Save model.state_dict() instead and give the task's arch",
      source, cls, why));
}

// ResNet-18..152 from the block class and the stages' block counts; "" for another layout.
std::string resnetArch(const Module& net, const std::string& l1, const std::string& l4) {
  std::vector<int64_t> blocks;
  std::string block;
  bool in = false;
  for (const auto& [name, child] : net.children()) {
    if (name == l1) in = true;
    if (!in) continue;
    blocks.push_back(static_cast<int64_t>(child.children().size()));
    if (block.empty() && !child.children().empty()) block = child.children().front().second.name();
    if (name == l4) break;
  }
  static const std::map<std::pair<std::string, std::vector<int64_t>>, std::string> known = {
      {{"BasicBlock", {2, 2, 2, 2}}, "resnet18"},   {{"BasicBlock", {3, 4, 6, 3}}, "resnet34"},
      {{"Bottleneck", {3, 4, 6, 3}}, "resnet50"},   {{"Bottleneck", {3, 4, 23, 3}}, "resnet101"},
      {{"Bottleneck", {3, 8, 36, 3}}, "resnet152"},
  };
  const auto it = known.find({block, blocks});
  return it == known.end() ? "" : it->second;
}

std::string vggArch(const Module& features) {
  int convs = 0;
  bool bn = false;
  for (const auto& [name, layer] : features.children()) {
    convs += layer.name() == "Conv2d";
    bn = bn || layer.name() == "BatchNorm2d";
  }
  static const std::map<int, std::string> depth = {
      {8, "vgg11"}, {10, "vgg13"}, {13, "vgg16"}, {16, "vgg19"}};
  const auto it = depth.find(convs);
  return it == depth.end() ? "" : it->second + (bn ? "_bn" : "");
}

// The classifier arch of a Faster R-CNN's backbone: torchvision's FPN over a ResNet body, or the
// original Gemel's plain Sequential (a ResNet's children but the last two, or a classifier's
// `features`).
std::string fasterRcnnArch(const Module& model) {
  const auto backbone = model.child("backbone");
  if (!backbone) return "";
  if (backbone->name() == "BackboneWithFPN") {
    const auto body = backbone->child("body");
    if (body && resnetArch(*body, "layer1", "layer4") == "resnet50")
      return "fasterrcnn_resnet50_fpn";
    if (body && body->child("1") && body->child("1")->name() == "InvertedResidual") {
      // MobileNetV3-Large's body; the _320_ build differs in its transform's sizes only
      const auto transform = model.child("transform");
      const auto size = transform ? transform->attr("min_size") : nullptr;
      const bool small = size && !size->items.empty() && size->items[0]->kind == Kind::kInt &&
                         size->items[0]->i == 320;
      return small ? "fasterrcnn_mobilenet_v3_large_320_fpn" : "fasterrcnn_mobilenet_v3_large_fpn";
    }
    return "";
  }
  if (backbone->name() != "Sequential") return "";
  std::string arch;
  if (backbone->child("4") && backbone->child("4")->name() == "Sequential") {
    arch = resnetArch(*backbone, "4", "7");
  } else if (backbone->child("1") && backbone->child("1")->name() == "InvertedResidual") {
    arch = "mobilenet_v2";
  } else {
    arch = vggArch(*backbone);
  }
  const auto name = "fasterrcnn:" + arch;
  return !arch.empty() && isFasterRcnnArch(name) ? name : "";
}

std::string archOf(const Module& m) {
  const auto& c = m.cls;
  if (c == "torchvision.models.resnet.ResNet") {
    if (m.intAttr("groups", 1) != 1 || m.intAttr("base_width", 64) != 64) return "";
    return resnetArch(m, "layer1", "layer4");
  }
  if (c == "torchvision.models.vgg.VGG") {
    const auto features = m.child("features");
    return features ? vggArch(*features) : "";
  }
  if (c == "torchvision.models.mobilenetv2.MobileNetV2") return "mobilenet_v2";
  if (c == "torchvision.models.mobilenetv3.MobileNetV3") {
    const auto features = m.child("features");
    if (!features) return "";
    const auto n = features->children().size();
    return n == 17 ? "mobilenet_v3_large" : n == 13 ? "mobilenet_v3_small" : "";
  }
  if (c == "torchvision.models.inception.Inception3") return "inception_v3";
  if (c == "torchvision.models.detection.faster_rcnn.FasterRCNN") return fasterRcnnArch(m);
  if (c == "torchvision.models.detection.ssd.SSD") {
    const auto backbone = m.child("backbone");
    const auto extra = backbone ? backbone->child("extra") : std::nullopt;
    if (!extra) return "";
    const auto blocks = extra->children().size();
    if (backbone->name() == "SSDFeatureExtractorVGG" && blocks == 5) return "ssd300_vgg16";
    if (backbone->name() == "SSDLiteFeatureExtractorMobileNet" && blocks == 4)
      return "ssdlite320_mobilenet_v3_large";
  }
  return "";
}

}  // namespace

bool isPickledModule(const ValuePtr& root) {
  return root->kind == Kind::kObject && root->state && root->state->kind == Kind::kDict &&
         root->state->get("_modules") != nullptr;
}

WeightsFile readPickledModule(const ValuePtr& root, const std::string& source) {
  const auto top = Module::of(root);
  WeightsFile out;
  out.module_class = top.cls;
  out.arch = archOf(top);
  if (out.arch.empty()) {
    const bool torchvision = top.cls.rfind("torchvision.", 0) == 0;
    unknown(source, top.cls,
            torchvision ? "a torchvision model in a layout gemel does not build"
                        : "not a torchvision model");
  }
  collect(top, "", out.state);
  return out;
}

}  // namespace gemel::models
