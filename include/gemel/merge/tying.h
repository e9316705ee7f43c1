#pragma once
// Tying: making the layers a SharingPlan shares one tensor across the models that share them.
// A trial starts from a snapshot of accepted weights: every shareable layer gets a fresh private
// tensor holding the snapshot's values, then each shared instance's members are given one
// member's tensors (Model::setParameter), so the shared tensor is one TensorImpl: one autograd
// leaf, one gradient (the sum over its uses), one optimizer entry.
#include <map>
#include <vector>

#include "gemel/merge/catalog.h"
#include "gemel/merge/planner.h"
#include "gemel/models/model.h"

namespace gemel::merge {

// Per model (catalog order): a deep copy of its state (parameters and buffers). A null model
// (trained on another rank) has an empty entry.
using Snapshot = std::vector<models::StateDict>;
Snapshot takeSnapshot(const std::vector<models::Model*>& models);

// Resets the models to `snapshot` and ties `plan`. The shared tensor of an instance is taken
// from a member that already shared it in `previous` (so accepted shared weights carry over),
// else from any member; among those, the one of lowest `rank[m]` (default: all 0), then the
// lowest model index. The search ranks members by their headroom above target, so a new shared
// layer starts from the weights of the model that can least afford to change.
// Null models (on other ranks) are skipped; when an instance's source member is not local, the
// local members are tied to one of them and the caller broadcasts the source's values.
// Returns the source model of every shared instance.
std::map<SharingPlan::Key, int> materialize(const std::vector<models::Model*>& models,
                                            const LayerCatalog& catalog, const SharingPlan& plan,
                                            const Snapshot& snapshot,
                                            const SharingPlan& previous = {},
                                            const std::vector<int>& rank = {});

// "task:module" of one member of an instance, as results.h5 lists them.
std::string memberName(const LayerCatalog& catalog, int model, const std::string& module);

}  // namespace gemel::merge
