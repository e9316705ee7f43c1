#pragma once
// Catalog entries for the planner and policy tests: a 3x3 conv layer of given channels.
#include <cstdint>
#include <string>

#include "gemel/models/layer_info.h"

namespace gemel::testing {

inline models::LayerInfo conv3x3(const std::string& module, int64_t out, int64_t in) {
  models::LayerInfo l;
  l.module = module;
  l.kind = models::LayerKind::kConv2d;
  l.params = {"weight"};
  l.shapes = {{out, in, 3, 3}};
  l.hyper = "p1,1 d1,1 g1";
  l.bytes = out * in * 9 * 4;
  return l;
}

}  // namespace gemel::testing
