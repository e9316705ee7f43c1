#pragma once
// LayerCatalog: which layers of a set of models can share weights, and what sharing saves.
//
// Rules (docs/merging.md): Conv and Linear layers are candidates; two layers are shareable when
// their signatures (kind, parameter shapes, hyper-parameters except stride) are equal. An instance
// holds at most one layer per model: the k-th layer of a signature in model A pairs with the
// k-th layer of that signature in every other model that has one. An instance shared by m
// models saves (m - 1) x its bytes. A group is the instances with one signature and one set of
// models; groups are ordered by bytes saved, largest first.
#include <cstdint>
#include <string>
#include <vector>

#include "gemel/models/layer_info.h"

namespace gemel::merge {

struct CatalogModel {
  std::string name;  // task name
  std::string arch;
  std::vector<models::LayerInfo> layers;
  int64_t total_bytes = 0;  // all parameters and buffers
};

// (Ranks send their models' descriptions to the others, which build the same catalog:
// merge/wire.h.)

struct LayerRef {
  int model = 0;       // index into LayerCatalog::models()
  std::string module;  // e.g. "layer3.1.conv2"
};

struct Instance {
  std::vector<LayerRef> members;  // one per model of the group, in model order
};

struct Group {
  int id = 0;  // position in LayerCatalog::groups()
  std::string signature;
  models::LayerKind kind = models::LayerKind::kConv2d;
  std::vector<int> models;  // model indices, ascending
  std::vector<Instance> instances;
  int64_t layer_bytes = 0;  // bytes of one layer
  int64_t bytes_saved = 0;  // (models - 1) x layer_bytes x instances
};

class LayerCatalog {
 public:
  explicit LayerCatalog(std::vector<CatalogModel> models);

  const std::vector<CatalogModel>& models() const { return models_; }
  const std::vector<Group>& groups() const { return groups_; }
  int64_t totalBytes() const { return total_bytes_; }
  int64_t savingsBytes() const { return savings_bytes_; }
  std::vector<std::string> modelNames(const Group& group) const;
  // The shareable layer `module` of a model; its params ("weight", and "bias" when it has one)
  // are the tensors that sharing ties. Asserts that the layer exists.
  const models::LayerInfo& layer(int model, const std::string& module) const;

 private:
  std::vector<CatalogModel> models_;
  std::vector<Group> groups_;
  int64_t total_bytes_ = 0;
  int64_t savings_bytes_ = 0;
};

}  // namespace gemel::merge
