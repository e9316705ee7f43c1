// Darknet .weights files, read and written in the layer order of the cfg.
#include <torch/torch.h>

#include <cstring>

#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "gemel/models/darknet_cfg.h"
#include "gemel/models/zoo.h"

namespace gemel::models {
namespace {

// Each convolution's tensors in file order: (name, shape).
std::vector<std::pair<std::string, std::vector<int64_t>>> fileOrder(const DarknetNet& net) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (std::size_t i = 0; i < net.layers.size(); ++i) {
    const auto& l = net.layers[i];
    if (l.type != DarknetLayerType::kConvolutional) continue;
    const auto n = std::to_string(i), m = "module_list." + n + ".";
    const int64_t f = l.filters;
    if (l.batch_normalize) {
      const auto bn = m + "batch_norm_" + n + ".";
      for (const char* p : {"bias", "weight", "running_mean", "running_var"})
        out.push_back({bn + p, {f}});
    } else {
      out.push_back({m + "conv_" + n + ".bias", {f}});
    }
    out.push_back({m + "conv_" + n + ".weight", {f, l.in_channels, l.size, l.size}});
  }
  return out;
}

}  // namespace

// (Here rather than beside the model, so that the .weights reader needs no module code.)
torch::Tensor darknetAnchors(const DarknetLayer& yolo) {
  std::vector<float> v;
  for (const int m : yolo.mask) {
    v.push_back(static_cast<float>(yolo.anchors[m].first));
    v.push_back(static_cast<float>(yolo.anchors[m].second));
  }
  return torch::tensor(v, torch::kFloat).view({-1, 2});
}

StateDict readDarknetWeights(const std::string& path, const DarknetNet& net) {
  const auto bytes = readFile(path, "Darknet weights file");
  int32_t version[3] = {0, 0, 0};
  GEMEL_THROW_IF_NOT(bytes.size() >= sizeof version, InputError,
                     "{}: {} bytes, too short for a Darknet .weights header", path, bytes.size());
  std::memcpy(version, bytes.data(), sizeof version);
  // "seen" is int64 from version 0.2 on (major and minor compared as darknet does, without
  // overflowing on a file that is not a .weights file at all).
  const bool wide_seen = int64_t(version[0]) * 10 + version[1] >= 2;
  const std::size_t header = 12 + (wide_seen ? 8 : 4);
  const auto order = fileOrder(net);
  int64_t needed = 0;
  for (const auto& [name, shape] : order) {
    int64_t n = 1;
    for (const auto d : shape) n *= d;
    needed += n;
  }
  const auto have = bytes.size() >= header ? static_cast<int64_t>((bytes.size() - header) / 4) : 0;
  GEMEL_THROW_IF_NOT(bytes.size() >= header && (bytes.size() - header) % 4 == 0 && have == needed,
                     InputError,
                     "{}: holds {} float32 values after its {}-byte header, but {} ({} classes) "
                     "needs {}; the file is for another network or number of classes, or "
                     "truncated; give the .weights file trained with this cfg",
                     path, have, header, net.source, net.classes(), needed);
  StateDict state;
  const char* at = bytes.data() + header;
  for (const auto& [name, shape] : order) {
    auto t = torch::empty(shape, torch::kFloat);
    std::memcpy(t.data_ptr<float>(), at, static_cast<std::size_t>(t.numel()) * 4);
    at += t.numel() * 4;
    state.emplace_back(name, std::move(t));
    // BatchNorm's counter, which PyTorch's state_dicts carry and Darknet files do not.
    if (name.size() > 12 && name.compare(name.size() - 12, 12, ".running_var") == 0) {
      state.emplace_back(name.substr(0, name.size() - 11) + "num_batches_tracked",
                         torch::zeros({}, torch::kLong));
    }
  }
  // The yolo layers' anchors, which the cfg holds.
  for (std::size_t i = 0; i < net.layers.size(); ++i) {
    if (net.layers[i].type != DarknetLayerType::kYolo) continue;
    const auto n = std::to_string(i), prefix = "module_list." + n + ".yolo_" + n + ".";
    const auto a = darknetAnchors(net.layers[i]);
    state.emplace_back(prefix + "anchors", a);
    state.emplace_back(prefix + "anchor_grid", a.clone().view({1, -1, 1, 1, 2}));
  }
  return state;
}

void writeDarknetWeights(const std::string& path, const DarknetNet& net, const StateDict& state) {
  AtomicFileWriter out(path);
  const int32_t version[3] = {0, 2, 0};
  const int64_t seen = 0;
  out.write(version, sizeof version);
  out.write(&seen, sizeof seen);
  for (const auto& [name, shape] : fileOrder(net)) {
    const torch::Tensor* found = nullptr;
    for (const auto& kv : state) found = kv.first == name ? &kv.second : found;
    GEMEL_THROW_IF_NOT(found != nullptr, InputError, "{}: the weights have no tensor '{}' of {}",
                       path, name, net.source);
    const auto t = found->detach().to(torch::kCPU, torch::kFloat).contiguous();
    GEMEL_THROW_IF_NOT(t.sizes() == torch::IntArrayRef(shape), InputError,
                       "{}: tensor '{}' has the wrong shape for {}", path, name, net.source);
    out.write(t.data_ptr<float>(), static_cast<std::size_t>(t.numel()) * 4);
  }
  out.commit();
}

}  // namespace gemel::models
