#include "gemel/models/model.h"

#include <torch/torch.h>

#include <map>
#include <set>
#include <sstream>
#include <variant>

#include "gemel/core/error.h"
#include "gemel/models/archs.h"
#include "model_impl.h"

namespace gemel::models {
namespace {

// A Conv2d's padding as text: "1,1", or "valid"/"same" for the string paddings.
std::string convPadding(const torch::nn::detail::ConvNdOptions<2>& options) {
  struct Visitor {
    std::string operator()(const torch::ExpandingArray<2>& p) const {
      return std::to_string((*p)[0]) + "," + std::to_string((*p)[1]);
    }
    std::string operator()(const torch::enumtype::kValid&) const { return "valid"; }
    std::string operator()(const torch::enumtype::kSame&) const { return "same"; }
  };
  return std::visit(Visitor{}, options.padding());
}

std::string shapeOf(const torch::Tensor& t) { return shapeString(t.sizes().vec()); }

std::string listSome(const std::vector<std::string>& names) {
  std::ostringstream out;
  const std::size_t shown = std::min<std::size_t>(names.size(), 3);
  for (std::size_t i = 0; i < shown; ++i) out << (i ? ", " : "") << "'" << names[i] << "'";
  if (names.size() > shown) out << " and " << names.size() - shown << " more";
  return out.str();
}

bool startsWith(const std::string& s, const std::string& prefix) {
  return !prefix.empty() && s.rfind(prefix, 0) == 0;
}

// nn::Module keeps its parameter registry protected. Naming the member through a derived class
// yields a pointer-to-member of Module, which may then be applied to any Module (well-defined,
// unlike casting a module to a type it is not).
struct ParameterSlots : torch::nn::Module {
  static torch::OrderedDict<std::string, torch::Tensor>& of(torch::nn::Module& m) {
    return m.*(&ParameterSlots::parameters_);
  }
};

// "layer1.0.conv1.weight" -> ("layer1.0.conv1", "weight").
std::pair<std::string, std::string> splitParameterName(const std::string& name) {
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return {"", name};
  return {name.substr(0, dot), name.substr(dot + 1)};
}

void checkReplacement(const std::string& name, const torch::Tensor& current,
                      const torch::Tensor& tensor) {
  GEMEL_THROW_IF_NOT(current.defined(), InputError, "'{}' is not a parameter of the model", name);
  GEMEL_THROW_IF_NOT(current.sizes() == tensor.sizes(), InputError,
                     "cannot set '{}' of shape {} to a tensor of shape {}", name, shapeOf(current),
                     shapeOf(tensor));
}

}  // namespace

LayerInfo makeLayerInfo(const std::string& module, LayerKind kind, const torch::Tensor& weight,
                        const torch::Tensor& bias, const std::string& hyper) {
  LayerInfo info;
  info.module = module;
  info.kind = kind;
  info.params.push_back("weight");
  info.shapes.push_back(weight.sizes().vec());
  info.bytes = weight.numel() * static_cast<int64_t>(weight.element_size());
  if (bias.defined()) {
    info.params.push_back("bias");
    info.shapes.push_back(bias.sizes().vec());
    info.bytes += bias.numel() * static_cast<int64_t>(bias.element_size());
  }
  info.hyper = hyper;
  return info;
}

StateDict Model::stateDict() const {
  auto out = namedParameters();
  for (auto& b : namedBuffers()) out.push_back(std::move(b));
  return out;
}

StateDict Model::stateDictCopy() const {
  auto out = stateDict();
  for (auto& [name, t] : out) t = t.detach().clone();
  return out;
}

namespace {}  // namespace

// A BatchNorm's num_batches_tracked that the file lacks while it has the layer's running
// statistics: torchvision's FrozenBatchNorm2d (its COCO-pretrained detectors) keeps no counter.
// The model's counter stays as it is; only momentum=None BatchNorm reads it, and the zoo's
// BatchNorms have a momentum.
bool frozenBatchNormCounter(const std::string& name,
                            const std::map<std::string, torch::Tensor>& given) {
  const std::string leaf = "num_batches_tracked";
  if (name.size() <= leaf.size() || name.compare(name.size() - leaf.size(), leaf.size(), leaf) != 0)
    return false;
  return given.count(name.substr(0, name.size() - leaf.size()) + "running_mean") > 0;
}

void Model::loadStateDict(const StateDict& state, const LoadStateOptions& options) {
  const auto source = options.source.empty() ? std::string("state_dict") : options.source;
  const auto head = headPrefix();
  const auto aux_head = auxHeadPrefix(arch());
  auto inHead = [&](const std::string& name) {
    return startsWith(name, head) || startsWith(name, aux_head);
  };
  GEMEL_THROW_IF_NOT(!options.skip_head || !head.empty(), InputError,
                     "{}: skip_head is not available for arch '{}' (its head is unknown)", source,
                     arch());
  std::map<std::string, torch::Tensor> given(state.begin(), state.end());
  std::set<std::string> used;
  std::vector<std::string> missing, mismatched;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // (destination, source)
  std::size_t head_mismatches = 0;
  for (const auto& [name, dest] : stateDict()) {
    const bool in_head = inHead(name);
    const auto it = given.find(name);
    if (it == given.end()) {
      if (!(options.skip_head && in_head) && !frozenBatchNormCounter(name, given))
        missing.push_back(name);
      continue;
    }
    used.insert(name);
    if (options.skip_head && in_head) continue;
    const auto& src = it->second;
    if (src.sizes() != dest.sizes()) {
      mismatched.push_back(name + " (file " + shapeOf(src) + ", model " + shapeOf(dest) + ")");
      head_mismatches += in_head ? 1 : 0;
      continue;
    }
    copies.emplace_back(dest, src);
  }
  std::vector<std::string> unexpected;  // in the file's order
  for (const auto& kv : state) {
    if (!used.count(kv.first) && !(options.skip_head && inHead(kv.first))) {
      unexpected.push_back(kv.first);
    }
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::ostringstream out;
    out << source << ": does not fit arch '" << arch() << "':";
    if (!missing.empty()) out << " missing key " << listSome(missing) << ";";
    if (!unexpected.empty()) out << " unexpected key " << listSome(unexpected) << ";";
    if (!mismatched.empty()) out << " wrong shape for " << listSome(mismatched) << ";";
    // Only the head's shapes differ (a classifier's fc, a detector's box predictor).
    if (!mismatched.empty() && head_mismatches == mismatched.size() && missing.empty() &&
        unexpected.empty()) {
      out << " only the classifier head differs: check num_classes, or set skip_head: true to "
             "fine-tune from these weights";
    } else if (missing.size() + unexpected.size() > 2) {
      out << " is it a weights file for another architecture? expected a state_dict of "
             "torchvision's "
          << arch();
    } else {
      out << " fix the file or the task's arch/num_classes";
    }
    throw InputError(out.str());
  }
  torch::NoGradGuard no_grad;
  for (auto& [dest, src] : copies) dest.copy_(src);
}

void Model::loadWeightsFile(const std::string& path, bool skip_head) {
  const auto file = readWeightsFile(path);
  checkWeightsArch(file, path, arch());
  loadStateDict(file.state, LoadStateOptions{skip_head, path});
}

void Model::saveWeightsFile(const std::string& path) const { writeStateDict(path, stateDict()); }

int64_t Model::parameterCount() const {
  int64_t n = 0;
  for (const auto& kv : namedParameters()) n += kv.second.numel();
  return n;
}

int64_t Model::stateBytes() const {
  int64_t n = 0;
  for (const auto& kv : stateDict())
    n += kv.second.numel() * static_cast<int64_t>(kv.second.element_size());
  return n;
}

// --- zoo models ---

ZooModel::ZooModel(const std::string& arch, std::shared_ptr<NetImpl> net)
    : Model(arch), net_(std::move(net)) {}

ModelOutput ZooModel::forward(const torch::Tensor& images, const std::vector<BoxTargets>*) {
  ModelOutput out;
  out.logits = net_->forward(images);
  return out;
}
void ZooModel::train(bool on) {
  net_->train(on);
  for (const auto& bn : frozen_batchnorm_) bn->eval();
}

void Model::freeze(const std::vector<std::string>&, const std::string&) {
  throw InputError(format("arch '{}': freezing layers is for zoo models only", arch()));
}

void ZooModel::freeze(const std::vector<std::string>& prefixes,
                      const std::string& batchnorm_prefix) {
  auto frozen = [&](const std::string& name) {
    return std::any_of(prefixes.begin(), prefixes.end(),
                       [&](const std::string& p) { return startsWith(name, p); });
  };
  for (const auto& kv : net_->named_modules("", false)) {
    const auto& m = kv.value();
    const bool bn = !batchnorm_prefix.empty() && startsWith(kv.key(), batchnorm_prefix) &&
                    m->as<torch::nn::BatchNorm2d>() != nullptr;
    if (bn) frozen_batchnorm_.push_back(m);
    bool any = false;
    for (auto& p : m->named_parameters(/*recurse=*/false)) {
      if (!bn && !frozen(kv.key() + "." + p.key())) continue;
      p.value().set_requires_grad(false);
      any = true;
    }
    if (any && (m->as<torch::nn::Conv2d>() || m->as<torch::nn::Linear>()))
      frozen_layers_.insert(kv.key());
  }
  train(net_->is_training());
}
void ZooModel::to(const torch::Device& device) { net_->to(device); }

StateDict ZooModel::namedParameters() const {
  StateDict out;
  for (const auto& kv : net_->named_parameters(true)) out.emplace_back(kv.key(), kv.value());
  return out;
}

StateDict ZooModel::namedBuffers() const {
  StateDict out;
  for (const auto& kv : net_->named_buffers(true)) out.emplace_back(kv.key(), kv.value());
  return out;
}

void ZooModel::setParameter(const std::string& name, const torch::Tensor& tensor) {
  const auto [module_name, leaf] = splitParameterName(name);
  std::shared_ptr<torch::nn::Module> module;
  for (const auto& kv : net_->named_modules("", true)) {
    if (kv.key() == module_name) module = kv.value();
  }
  GEMEL_THROW_IF_NOT(module != nullptr, InputError, "'{}': the model has no module '{}'", name,
                     module_name);
  auto& slots = ParameterSlots::of(*module);
  const auto* slot = slots.find(leaf);
  checkReplacement(name, slot ? *slot : torch::Tensor(), tensor);
  // The layer's own member (what forward reads) and the registry must both hold the tensor.
  if (auto* c = module->as<torch::nn::Conv2d>()) {
    (leaf == "weight" ? c->weight : c->bias) = tensor;
  } else if (auto* l = module->as<torch::nn::Linear>()) {
    (leaf == "weight" ? l->weight : l->bias) = tensor;
  } else {
    throw InputError(format("'{}': only Conv2d and Linear parameters can be shared", name));
  }
  slots[leaf] = tensor;
}

std::vector<LayerInfo> ZooModel::layers() const {
  std::vector<LayerInfo> out;
  for (const auto& kv : net_->named_modules("", false)) {
    const auto& m = kv.value();
    if (frozen_layers_.count(kv.key())) continue;
    if (const auto* c = m->as<torch::nn::Conv2d>()) {
      const auto& o = c->options;
      std::string hyper = "p" + convPadding(o) + " d" + std::to_string((*o.dilation())[0]) + "," +
                          std::to_string((*o.dilation())[1]) + " g" + std::to_string(o.groups());
      out.push_back(makeLayerInfo(kv.key(), LayerKind::kConv2d, c->weight, c->bias, hyper));
    } else if (const auto* l = m->as<torch::nn::Linear>()) {
      out.push_back(makeLayerInfo(kv.key(), LayerKind::kLinear, l->weight, l->bias, ""));
    }
  }
  return out;
}

std::string ZooModel::headPrefix() const { return models::headPrefix(arch()); }

bool ZooModel::hasDropout() const {
  for (const auto& m : net_->modules(/*include_self=*/false)) {
    if (m->name().find("Dropout") != std::string::npos) return true;
  }
  return false;
}

}  // namespace gemel::models
