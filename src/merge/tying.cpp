#include "gemel/merge/tying.h"

#include <torch/torch.h>

#include <map>
#include <tuple>

#include "gemel/core/error.h"

namespace gemel::merge {

Snapshot takeSnapshot(const std::vector<models::Model*>& models) {
  torch::NoGradGuard no_grad;
  Snapshot out;
  for (const auto* m : models) {
    out.push_back(m ? m->stateDictCopy() : models::StateDict{});
  }
  return out;
}

std::string memberName(const LayerCatalog& catalog, int model, const std::string& module) {
  return catalog.models()[model].name + ":" + module;
}

std::map<SharingPlan::Key, int> materialize(const std::vector<models::Model*>& models,
                                            const LayerCatalog& catalog, const SharingPlan& plan,
                                            const Snapshot& snapshot, const SharingPlan& previous,
                                            const std::vector<int>& rank) {
  std::map<SharingPlan::Key, int> sources;
  GEMEL_ASSERT(models.size() == catalog.models().size() && snapshot.size() == models.size(),
               "materialize: models, catalog and snapshot disagree");
  torch::NoGradGuard no_grad;
  // 1. Untie: fresh private tensors for every shareable layer; then the snapshot's values go
  //    into everything (loadStateDict copies into the tensors the model now holds).
  for (std::size_t m = 0; m < models.size(); ++m) {
    if (!models[m]) continue;
    std::map<std::string, torch::Tensor> state(snapshot[m].begin(), snapshot[m].end());
    for (const auto& layer : catalog.models()[m].layers) {
      for (const auto& p : layer.params) {
        const auto name = layer.module + "." + p;
        const auto it = state.find(name);
        GEMEL_ASSERT(it != state.end(), "snapshot lacks " + name);
        auto fresh = torch::empty_like(it->second);
        fresh.set_requires_grad(true);
        models[m]->setParameter(name, fresh);
      }
    }
    models[m]->loadStateDict(snapshot[m], {false, catalog.models()[m].name});
  }
  // 2. Tie: every member of a shared instance takes the source member's tensors.
  std::vector<std::map<std::string, torch::Tensor>> params;
  for (const auto* m : models) {
    if (!m) {
      params.emplace_back();
      continue;
    }
    const auto named = m->namedParameters();
    params.emplace_back(named.begin(), named.end());
  }
  for (const auto& [key, members] : plan.instances()) {
    if (members.size() < 2) continue;
    const auto& group = catalog.groups()[key.first];
    const auto& instance = group.instances[key.second];
    auto moduleOf = [&](int model) -> const std::string& {
      for (const auto& ref : instance.members) {
        if (ref.model == model) return ref.module;
      }
      throw Error(format("internal: model {} is not in group {}", model, group.id));
    };
    auto rankOf = [&](int m) { return rank.empty() ? 0 : rank[m]; };
    const auto prev = previous.instances().find(key);
    auto shared_before = [&](int m) {
      return prev != previous.instances().end() && prev->second.count(m) > 0;
    };
    int source = -1;
    auto better = [&](int m) {  // (not shared before, rank, index), lowest first
      return std::make_tuple(!shared_before(m), rankOf(m), m) <
             std::make_tuple(!shared_before(source), rankOf(source), source);
    };
    for (const int m : members) {
      if (source < 0 || better(m)) source = m;
    }
    sources[key] = source;
    // Locally, tie to the source when it is here, else to the first local member (whose values
    // the caller then overwrites with the source's, broadcast from the source's rank).
    int holder = models[source] ? source : -1;
    for (const int m : members) {
      if (holder < 0 && models[m]) holder = m;
    }
    if (holder < 0) continue;
    source = holder;
    for (const int m : members) {
      if (m == source || !models[m]) continue;
      for (const auto& leaf : catalog.layer(source, moduleOf(source)).params) {
        const auto src = params[source].find(moduleOf(source) + "." + leaf);
        if (src == params[source].end()) continue;
        const auto dst_name = moduleOf(m) + "." + leaf;
        models[m]->setParameter(dst_name, src->second);
        params[m][dst_name] = src->second;
      }
    }
  }
  return sources;
}

}  // namespace gemel::merge
