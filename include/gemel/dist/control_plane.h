#pragma once
// ControlPlane: the merge's messages between ranks, apart from the gradient traffic
// (GradSync). Protocol: every rank runs the same search; rank 0 (the lead) alone runs the
// Planner and writes results.h5.
//   - share(): one rank's text to every rank: a catalog entry from the task's owner; a trial,
//     a decision (the accepted plan) or the end of the search ("") from the lead;
//   - sum(): counts summed over all ranks (validation counts, data-stream positions);
//   - gatherStates(): each task's accepted weights from its owner to the lead, packed in the
//     wire format below (no temporary files, no zip).
// One process is a world of one: every call then returns at once.
#include <cstdint>
#include <string>
#include <vector>

#include "gemel/models/state_dict.h"

namespace gemel::dist {

class Cluster;

class ControlPlane {
 public:
  explicit ControlPlane(const Cluster& cluster) : cluster_(cluster) {}
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  int rank() const;
  bool lead() const { return rank() == 0; }

  // Every rank returns `root`'s text.
  std::string share(std::string text, int root = 0) const;
  void sum(std::vector<int64_t>& values) const;
  // Every rank's values concatenated in rank order, on every rank.
  void concat(std::vector<int64_t>& values) const;
  int64_t max(int64_t value) const;
  // states[t] is filled on the rank that owns task t (owners[t]). The lead returns every
  // task's state; the other ranks return empty entries.
  std::vector<models::StateDict> gatherStates(const std::vector<models::StateDict>& states,
                                              const std::vector<int>& owners) const;

 private:
  const Cluster& cluster_;
};

// The weights wire format: count, then per tensor its name, dtype, shape and raw bytes.
std::vector<char> packState(const models::StateDict& state);
models::StateDict unpackState(const std::vector<char>& bytes);

}  // namespace gemel::dist
