#include "gemel/models/layer_info.h"

namespace gemel::models {

std::string toString(LayerKind kind) { return kind == LayerKind::kConv2d ? "conv2d" : "linear"; }

std::string shapeString(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string LayerInfo::signature() const {
  std::string out = toString(kind);
  for (std::size_t i = 0; i < params.size(); ++i) out += " " + params[i] + shapeString(shapes[i]);
  if (!hyper.empty()) out += " " + hyper;
  return out;
}

}  // namespace gemel::models
