#include <sstream>

#include "gemel/core/error.h"
#include "model_impl.h"

namespace gemel::models {
namespace {

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

std::string typeName(const torch::jit::Module& m) {
  const auto name = m.type()->name();
  return name ? name->qualifiedName() : "";
}

// A conv hyper-parameter from the module's constants (scripted) or attributes; "?" if neither.
std::string hyperValue(const torch::jit::Module& m, const std::string& key) {
  c10::IValue v;
  if (m.type()->hasConstant(key)) {
    v = m.type()->getConstant(key);
  } else if (m.hasattr(key)) {
    v = m.attr(key);
  } else {
    return "?";
  }
  std::ostringstream out;
  if (v.isTuple()) {
    const auto& elems = v.toTupleRef().elements();
    for (std::size_t i = 0; i < elems.size(); ++i) out << (i ? "," : "") << elems[i];
  } else if (v.isIntList()) {
    const auto list = v.toIntVector();
    for (std::size_t i = 0; i < list.size(); ++i) out << (i ? "," : "") << list[i];
  } else {
    out << v;
  }
  return out.str();
}

torch::Tensor optionalTensor(const torch::jit::Module& m, const std::string& key) {
  if (!m.hasattr(key)) return {};
  const auto v = m.attr(key);
  return v.isTensor() ? v.toTensor() : torch::Tensor();
}

}  // namespace

ScriptModel::ScriptModel(std::string path, torch::jit::Module module)
    : Model("torchscript"), path_(std::move(path)), module_(std::move(module)) {}

ModelOutput ScriptModel::forward(const torch::Tensor& images, const std::vector<BoxTargets>*) {
  const auto out = module_.forward({images});
  GEMEL_THROW_IF_NOT(out.isTensor(), InputError,
                     "{}: the TorchScript module's forward returned {}, not a tensor of logits; "
                     "a classification module must return [N, num_classes]",
                     path_, out.tagKind());
  ModelOutput result;
  result.logits = out.toTensor();
  return result;
}

void ScriptModel::train(bool on) { module_.train(on); }
void ScriptModel::to(const torch::Device& device) { module_.to(device); }

StateDict ScriptModel::namedParameters() const {
  StateDict out;
  for (const auto& p : module_.named_parameters(true)) out.emplace_back(p.name, p.value);
  return out;
}

StateDict ScriptModel::namedBuffers() const {
  StateDict out;
  for (const auto& b : module_.named_buffers(true)) out.emplace_back(b.name, b.value);
  return out;
}

void ScriptModel::setParameter(const std::string& name, const torch::Tensor& tensor) {
  const auto dot = name.rfind('.');
  const std::string module_name = dot == std::string::npos ? "" : name.substr(0, dot);
  const std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
  for (const auto& item : module_.named_modules()) {
    if (item.name != module_name) continue;
    auto m = item.value;
    GEMEL_THROW_IF_NOT(m.hasattr(leaf) && m.attr(leaf).isTensor(), InputError,
                       "{}: '{}' is not a parameter of the TorchScript module", path_, name);
    const auto current = m.attr(leaf).toTensor();
    GEMEL_THROW_IF_NOT(current.sizes() == tensor.sizes(), InputError,
                       "{}: cannot set '{}' of shape {} to a tensor of shape {}", path_, name,
                       shapeString(current.sizes().vec()), shapeString(tensor.sizes().vec()));
    // A TorchScript attribute slot: the module's code reads the slot, so replacing it ties.
    m.setattr(leaf, tensor);
    return;
  }
  throw InputError(format("{}: the TorchScript module has no submodule '{}'", path_, module_name));
}

std::vector<LayerInfo> ScriptModel::layers() const {
  std::vector<LayerInfo> out;
  for (const auto& item : module_.named_modules()) {
    const auto type = typeName(item.value);
    // Scripting mangles the names of differently-configured copies of a class:
    // "__torch__.torch.nn.modules.conv.___torch_mangle_3.Conv2d".
    const bool conv = contains(type, "torch.nn.modules.conv.") && endsWith(type, ".Conv2d");
    const bool linear = contains(type, "torch.nn.modules.linear.") && endsWith(type, ".Linear");
    if (!conv && !linear) continue;
    const auto weight = optionalTensor(item.value, "weight");
    if (!weight.defined()) continue;
    const auto bias = optionalTensor(item.value, "bias");
    std::string hyper;
    if (conv) {
      const auto p = hyperValue(item.value, "padding");
      const auto d = hyperValue(item.value, "dilation");
      const auto g = hyperValue(item.value, "groups");
      hyper = (p == "?" || d == "?" || g == "?") ? "hp?" : "p" + p + " d" + d + " g" + g;
    }
    out.push_back(makeLayerInfo(item.name, conv ? LayerKind::kConv2d : LayerKind::kLinear, weight,
                                bias, hyper));
  }
  return out;
}

bool ScriptModel::hasDropout() const {
  // Dropout in a TorchScript module is a call inside forward, not always a submodule: assume it.
  return true;
}

std::string ScriptModel::headPrefix() const {
  // The last Linear layer is the classifier head.
  std::string head;
  for (const auto& layer : layers()) {
    if (layer.kind == LayerKind::kLinear) head = layer.module + ".";
  }
  return head;
}

}  // namespace gemel::models
