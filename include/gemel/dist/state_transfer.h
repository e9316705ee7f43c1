#pragma once
// Weights between ranks: each task's accepted state from its owner to the lead (results.h5 is
// written there), packed in the weights wire format below: no temporary files, no zip.
#include <vector>

#include "gemel/dist/world.h"
#include "gemel/models/state_dict.h"

namespace gemel::dist {

// states[t] is filled on the rank that owns task t (owners[t]). The lead returns every task's
// state; the other ranks return empty entries. A collective: every rank calls it.
std::vector<models::StateDict> gatherStates(const World& world,
                                            const std::vector<models::StateDict>& states,
                                            const std::vector<int>& owners);

// The weights wire format: count, then per tensor its name, dtype, shape and raw bytes.
std::vector<char> packState(const models::StateDict& state);
models::StateDict unpackState(const std::vector<char>& bytes);

}  // namespace gemel::dist
