#pragma once
// Planner: which layers to try sharing next (docs/merging.md). Pure search
// logic over a LayerCatalog: it proposes trials and is told which models met their accuracy
// targets; the training happens elsewhere. Strategies:
//   greedy  Gemel's incremental search: groups largest first; after a trial the layers are
//           confirmed for the models that met their targets (at least two); when models failed,
//           half of the trial's layers (those nearest the input) are retried next, unless that
//           half would save less than the next group, and then the search moves on. It ends
//           when no group is left. With a second pass (enableSecondPass), a group whose
//           first-pass trials are over and whose layers are not yet shared by all its models
//           gets one more try (pass 2: those layers, every model of the group, halving as
//           before). A second try goes ahead of the next first-pass group when half of what it
//           would save (kSecondTryOdds: it failed once) exceeds what that group would save;
//           so large partial or rejected groups come back before small untried ones, and the
//           rest after the first pass, largest first. The search ends when neither is left.
//   all     one trial sharing every shareable layer.
//   manual  the listed groups, in the order given, without halving.
// Defects of the reference fixed here: the last group is tried, and the loop always ends
// (every retry has strictly fewer layers).
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gemel/merge/catalog.h"

namespace gemel::merge {

// Layers of one catalog group to share among some of its models.
struct TrialPart {
  int group = 0;
  std::vector<int> instances;  // indices into the group's instances, ascending
  std::vector<int> models;     // catalog model indices, ascending (a subset of the group's)
};

struct Trial {
  int number = 0;  // 1-based, in the order proposed
  std::vector<TrialPart> parts;
  int64_t bytes_saved = 0;          // what accepting all of it would add to the savings
  std::string label;                // "group 3 (8 layers)" / "group 3, half (4 layers)"
  int pass = 1;                     // 2: a second try of layers the first pass left unshared
  std::vector<int> models() const;  // union of the parts' models, ascending
};

// Which models share each catalog instance: (group, instance) -> models (two or more).
class SharingPlan {
 public:
  using Key = std::pair<int, int>;
  void add(const TrialPart& part);
  const std::map<Key, std::set<int>>& instances() const { return members_; }
  bool empty() const { return members_.empty(); }
  // Bytes saved: for each instance shared by m models, (m - 1) x the layer's bytes.
  int64_t bytesSaved(const LayerCatalog& catalog) const;
  // Models that share at least one layer.
  std::set<int> models() const;
  // The plan with `trial` added (what a trial trains).
  SharingPlan with(const Trial& trial) const;
  // `models` and every model that shares a layer with one of them, transitively: the models
  // whose weights training `models` can move.
  std::set<int> connected(const std::vector<int>& models) const;
  // The instances whose members are all among `models`.
  SharingPlan only(const std::set<int>& models) const;
  // (Its form between ranks: merge/wire.h.)
  // JSON form, for results.h5 (/search/state plan): [[group, instance, [models]], ...].
  std::string json() const;
  // Reads the JSON form back; throws InputError (naming `where`) when it is not one.
  static SharingPlan fromJson(const std::string& json, const std::string& where);
  bool operator==(const SharingPlan& other) const { return members_ == other.members_; }

 private:
  std::map<Key, std::set<int>> members_;
};

enum class Strategy { kGreedy, kAll, kManual };
Strategy parseStrategy(const std::string& name);  // throws ConfigError

class Planner {
 public:
  // manual_groups: group ids for Strategy::kManual (checked against the catalog).
  Planner(const LayerCatalog& catalog, Strategy strategy, std::vector<int> manual_groups = {});

  // Greedy only: second tries of the groups the first pass left unshared (see above).
  void enableSecondPass() { second_pass_ = strategy_ == Strategy::kGreedy; }
  static constexpr double kSecondTryOdds = 0.5;
  // The next trial, or nullopt when the search is over.
  std::optional<Trial> next();
  // The outcome of the trial next() returned last: the models (of any part) that met their
  // targets. Returns the parts accepted into the plan (possibly none).
  std::vector<TrialPart> report(const Trial& trial, const std::set<int>& met);

  const SharingPlan& accepted() const { return accepted_; }

 private:
  int64_t partBytes(const TrialPart& part) const;  // added savings over the accepted plan
  Trial makeTrial(std::vector<TrialPart> parts, std::string label) const;
  std::optional<Trial> secondTry(const std::optional<Trial>& next_first) const;

  const LayerCatalog& catalog_;
  Strategy strategy_;
  std::vector<Trial> pending_;  // front = next
  SharingPlan accepted_;
  int proposed_ = 0;
  bool second_pass_ = false;
  std::set<int> tried_;         // groups proposed in the first pass
  std::set<int> second_tried_;  // groups that had their second try
};

}  // namespace gemel::merge
