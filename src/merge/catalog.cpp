#include "gemel/merge/catalog.h"

#include "gemel/core/error.h"

#include <sstream>

#include <algorithm>
#include <map>

namespace gemel::merge {

LayerCatalog::LayerCatalog(std::vector<CatalogModel> models) : models_(std::move(models)) {
  // signature -> per model, its layers of that signature in definition order
  std::map<std::string, std::vector<std::vector<const models::LayerInfo*>>> by_signature;
  std::vector<std::string> first_seen;  // signatures in order of first appearance
  for (std::size_t m = 0; m < models_.size(); ++m) {
    total_bytes_ += models_[m].total_bytes;
    for (const auto& layer : models_[m].layers) {
      const auto sig = layer.signature();
      auto [it, inserted] = by_signature.try_emplace(sig);
      if (inserted) first_seen.push_back(sig);
      it->second.resize(models_.size());
      it->second[m].push_back(&layer);
    }
  }

  struct Pending {
    Group group;
    std::size_t order;  // tie-break: first appearance
  };
  std::vector<Pending> pending;
  for (const auto& sig : first_seen) {
    const auto& per_model = by_signature[sig];
    std::size_t depth = 0;
    for (const auto& layers : per_model) depth = std::max(depth, layers.size());
    std::map<std::vector<int>, std::size_t> group_of;  // model set -> index in pending
    for (std::size_t k = 0; k < depth; ++k) {
      Instance inst;
      std::vector<int> set;
      for (std::size_t m = 0; m < per_model.size(); ++m) {
        if (k < per_model[m].size()) {
          inst.members.push_back({static_cast<int>(m), per_model[m][k]->module});
          set.push_back(static_cast<int>(m));
        }
      }
      if (set.size() < 2) continue;  // a layer alone saves nothing
      auto it = group_of.find(set);
      if (it == group_of.end()) {
        Pending p;
        const auto* layer = per_model[set.front()][k];
        p.group.signature = sig;
        p.group.kind = layer->kind;
        p.group.models = set;
        p.group.layer_bytes = layer->bytes;
        p.order = pending.size();
        pending.push_back(std::move(p));
        it = group_of.emplace(set, pending.size() - 1).first;
      }
      auto& g = pending[it->second].group;
      g.instances.push_back(std::move(inst));
      g.bytes_saved += static_cast<int64_t>(set.size() - 1) * g.layer_bytes;
    }
  }
  std::stable_sort(pending.begin(), pending.end(), [](const Pending& a, const Pending& b) {
    if (a.group.bytes_saved != b.group.bytes_saved)
      return a.group.bytes_saved > b.group.bytes_saved;
    return a.order < b.order;
  });
  for (auto& p : pending) {
    p.group.id = static_cast<int>(groups_.size());
    savings_bytes_ += p.group.bytes_saved;
    groups_.push_back(std::move(p.group));
  }
}

std::vector<std::string> LayerCatalog::modelNames(const Group& group) const {
  std::vector<std::string> names;
  for (const int m : group.models) names.push_back(models_[m].name);
  return names;
}

const models::LayerInfo& LayerCatalog::layer(int model, const std::string& module) const {
  for (const auto& l : models_.at(static_cast<std::size_t>(model)).layers) {
    if (l.module == module) return l;
  }
  assertionFailed("the layer is in the catalog", __FILE__, __LINE__,
                  format("{} has no shareable layer {}", models_[model].name, module));
}

}  // namespace gemel::merge
