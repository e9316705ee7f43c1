#pragma once
// A layer with weights, as the merge search sees it: no tensors, only what decides whether two
// layers can share weights (kind, parameter shapes, hyper-parameters except stride) and what
// sharing saves (bytes).
#include <cstdint>
#include <string>
#include <vector>

namespace gemel::models {

enum class LayerKind { kConv2d, kLinear };

struct LayerInfo {
  std::string module;  // path in its model, e.g. "layer1.0.conv1"
  LayerKind kind = LayerKind::kConv2d;
  std::vector<std::string> params;           // "weight" and, when present, "bias"
  std::vector<std::vector<int64_t>> shapes;  // one per params entry
  std::string hyper;                         // hyper-parameters except stride, e.g. "k3 p1 d1 g1"
  int64_t bytes = 0;                         // bytes of all its parameters

  // Equal signatures <=> shareable.
  std::string signature() const;
};

std::string toString(LayerKind kind);
std::string shapeString(const std::vector<int64_t>& shape);

}  // namespace gemel::models
