#include "gemel/merge/model_layers.h"
#include "gemel/models/model.h"

namespace gemel::merge {

CatalogModel describeModel(const std::string& name, const models::Model& model) {
  CatalogModel out;
  out.name = name;
  out.arch = model.arch();
  out.layers = model.layers();
  out.total_bytes = model.stateBytes();
  return out;
}

}  // namespace gemel::merge
