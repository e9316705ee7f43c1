#include "gemel/merge/planner.h"

#include <cctype>

#include <algorithm>
#include <sstream>

#include "gemel/core/error.h"

namespace gemel::merge {

std::vector<int> Trial::models() const {
  std::set<int> all;
  for (const auto& p : parts) all.insert(p.models.begin(), p.models.end());
  return {all.begin(), all.end()};
}

void SharingPlan::add(const TrialPart& part) {
  if (part.models.size() < 2) return;
  for (const int i : part.instances) {
    auto& m = members_[{part.group, i}];
    m.insert(part.models.begin(), part.models.end());
  }
}

int64_t SharingPlan::bytesSaved(const LayerCatalog& catalog) const {
  int64_t saved = 0;
  for (const auto& [key, models] : members_) {
    if (models.size() >= 2)
      saved += static_cast<int64_t>(models.size() - 1) * catalog.groups()[key.first].layer_bytes;
  }
  return saved;
}

std::set<int> SharingPlan::models() const {
  std::set<int> out;
  for (const auto& [key, models] : members_) {
    if (models.size() >= 2) out.insert(models.begin(), models.end());
  }
  return out;
}

SharingPlan SharingPlan::with(const Trial& trial) const {
  SharingPlan out = *this;
  for (const auto& p : trial.parts) out.add(p);
  return out;
}

std::set<int> SharingPlan::connected(const std::vector<int>& models) const {
  std::set<int> reached(models.begin(), models.end());
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& [key, members] : members_) {
      if (members.size() < 2) continue;
      bool touches = false;
      for (const int m : members) touches = touches || reached.count(m) > 0;
      if (!touches) continue;
      for (const int m : members) grew = reached.insert(m).second || grew;
    }
  }
  return reached;
}

SharingPlan SharingPlan::only(const std::set<int>& models) const {
  SharingPlan out;
  for (const auto& [key, members] : members_) {
    bool inside = true;
    for (const int m : members) inside = inside && models.count(m) > 0;
    if (inside) out.members_[key] = members;
  }
  return out;
}

namespace {

std::string joinInts(const std::vector<int>& values) {
  std::string out;
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + std::to_string(values[i]);
  return out;
}

}  // namespace

std::string SharingPlan::json() const {
  std::string out = "[";
  for (const auto& [key, models] : members_) {
    if (out.size() > 1) out += ",";
    out += "[" + std::to_string(key.first) + "," + std::to_string(key.second) + ",[" +
           joinInts({models.begin(), models.end()}) + "]]";
  }
  return out + "]";
}

SharingPlan SharingPlan::fromJson(const std::string& json, const std::string& where) {
  SharingPlan plan;
  int depth = 0;
  std::vector<int> head;  // group, instance
  std::set<int> models;
  std::string number;
  auto bad = [&] {
    return InputError(format("{}: the sharing plan is not [[group, instance, [models]], ...]: {}",
                             where, json.substr(0, 80)));
  };
  auto flush = [&] {
    if (number.empty()) return;
    const int v = std::stoi(number);
    number.clear();
    if (depth == 3) {
      models.insert(v);
    } else if (depth == 2) {
      head.push_back(v);
    } else {
      throw bad();
    }
  };
  for (const char ch : json) {
    if (std::isdigit(static_cast<unsigned char>(ch))) {
      number += ch;
      continue;
    }
    flush();
    if (ch == '[') {
      if (++depth > 3) throw bad();
    } else if (ch == ']') {
      if (depth == 2) {
        if (head.size() != 2 || models.size() < 2) throw bad();
        plan.members_[{head[0], head[1]}] = models;
        head.clear();
        models.clear();
      }
      if (--depth < 0) throw bad();
    } else if (ch != ',' && ch != ' ') {
      throw bad();
    }
  }
  if (depth != 0) throw bad();
  return plan;
}

Strategy parseStrategy(const std::string& name) {
  if (name == "greedy") return Strategy::kGreedy;
  if (name == "all") return Strategy::kAll;
  if (name == "manual") return Strategy::kManual;
  throw ConfigError("search.strategy '" + name + "' is unknown; use greedy, all or manual");
}

namespace {

TrialPart wholeGroup(const Group& g) {
  TrialPart part;
  part.group = g.id;
  for (int i = 0; i < static_cast<int>(g.instances.size()); ++i) part.instances.push_back(i);
  part.models = g.models;
  return part;
}

std::string groupLabel(const TrialPart& p, const char* what) {
  return format("group {}{} ({} layer{} x {} models)", p.group, what, p.instances.size(),
                p.instances.size() == 1 ? "" : "s", p.models.size());
}

}  // namespace

Planner::Planner(const LayerCatalog& catalog, Strategy strategy, std::vector<int> manual_groups)
    : catalog_(catalog), strategy_(strategy) {
  const auto& groups = catalog.groups();
  switch (strategy) {
    case Strategy::kGreedy:
      for (const auto& g : groups) pending_.push_back(makeTrial({wholeGroup(g)}, ""));
      break;
    case Strategy::kAll: {
      std::vector<TrialPart> parts;
      for (const auto& g : groups) parts.push_back(wholeGroup(g));
      if (!parts.empty()) pending_.push_back(makeTrial(std::move(parts), "every group"));
      break;
    }
    case Strategy::kManual:
      GEMEL_THROW_IF_NOT(!manual_groups.empty(), ConfigError,
                         "search.strategy manual needs search.groups: group numbers as "
                         "'gemel inspect' lists them");
      for (const int id : manual_groups) {
        GEMEL_THROW_IF_NOT(id >= 0 && id < static_cast<int>(groups.size()), ConfigError,
                           "search.groups: group {} does not exist; this workload has groups "
                           "0..{} (see 'gemel inspect')",
                           id, static_cast<int>(groups.size()) - 1);
        pending_.push_back(makeTrial({wholeGroup(groups[id])}, ""));
      }
      break;
  }
}

int64_t Planner::partBytes(const TrialPart& part) const {
  const int64_t layer = catalog_.groups()[part.group].layer_bytes;
  int64_t added = 0;
  for (const int i : part.instances) {
    std::set<int> now(part.models.begin(), part.models.end());
    std::size_t before = 0;
    const auto it = accepted_.instances().find({part.group, i});
    if (it != accepted_.instances().end()) {
      before = it->second.size();
      now.insert(it->second.begin(), it->second.end());
    }
    const auto save = [&](std::size_t m) {
      return m >= 2 ? static_cast<int64_t>(m - 1) * layer : 0;
    };
    added += save(now.size()) - save(before);
  }
  return added;
}

Trial Planner::makeTrial(std::vector<TrialPart> parts, std::string label) const {
  Trial t;
  t.parts = std::move(parts);
  for (const auto& p : t.parts) t.bytes_saved += partBytes(p);
  t.label = label.empty() && t.parts.size() == 1 ? groupLabel(t.parts[0], "") : std::move(label);
  return t;
}

// The most valuable second try: of the groups whose first-pass trials (halves included) are
// over and that have not had a second try, the instances not yet shared by all the group's
// models, with every model of the group; the one that would save the most.
std::optional<Trial> Planner::secondTry(const std::optional<Trial>& next_first) const {
  std::set<int> queued;
  for (const auto& t : pending_) {
    for (const auto& p : t.parts) queued.insert(p.group);
  }
  if (next_first) {
    for (const auto& p : next_first->parts) queued.insert(p.group);
  }
  std::optional<Trial> best;
  for (const int id : tried_) {
    if (second_tried_.count(id) || queued.count(id)) continue;
    const auto& g = catalog_.groups()[id];
    TrialPart part;
    part.group = id;
    part.models = g.models;
    for (int i = 0; i < static_cast<int>(g.instances.size()); ++i) {
      const auto it = accepted_.instances().find({id, i});
      if (it == accepted_.instances().end() || it->second.size() < g.models.size())
        part.instances.push_back(i);
    }
    if (part.instances.empty()) continue;
    auto t = makeTrial({part}, groupLabel(part, ", second try"));
    t.pass = 2;
    if (t.bytes_saved > 0 && (!best || t.bytes_saved > best->bytes_saved)) best = std::move(t);
  }
  return best;
}

std::optional<Trial> Planner::next() {
  std::optional<Trial> first;
  while (!pending_.empty() && !first) {
    Trial t = std::move(pending_.front());
    pending_.erase(pending_.begin());
    // Recompute against the plan as it stands (earlier trials may have accepted layers).
    const int pass = t.pass;
    t = makeTrial(std::move(t.parts), t.label);
    t.pass = pass;
    if (t.bytes_saved > 0) first = std::move(t);  // else nothing left to gain
  }
  auto second = second_pass_ ? secondTry(first) : std::nullopt;
  if (second && (!first || second->bytes_saved * kSecondTryOdds > first->bytes_saved)) {
    if (first) pending_.insert(pending_.begin(), std::move(*first));
    second_tried_.insert(second->parts[0].group);
    second->number = ++proposed_;
    return second;
  }
  if (!first) return std::nullopt;
  if (first->pass == 1) {
    for (const auto& p : first->parts) tried_.insert(p.group);
  }
  first->number = ++proposed_;
  return first;
}

std::vector<TrialPart> Planner::report(const Trial& trial, const std::set<int>& met) {
  std::vector<TrialPart> accepted;
  std::vector<TrialPart> retries;
  for (const auto& part : trial.parts) {
    TrialPart ok = part;
    ok.models.clear();
    for (const int m : part.models) {
      if (met.count(m)) ok.models.push_back(m);
    }
    if (ok.models.size() >= 2) {
      accepted_.add(ok);
      accepted.push_back(ok);
    }
    const bool all_met = ok.models.size() == part.models.size();
    if (all_met || strategy_ != Strategy::kGreedy || part.instances.size() < 2) continue;
    // Retry the half of the layers nearest the input (the catalog lists instances in network
    // order), with every model of the part: the ones already confirmed keep sharing, the
    // failed ones try again on fewer layers.
    TrialPart half = part;
    half.instances.resize(part.instances.size() / 2);
    retries.push_back(half);
  }
  // A retry goes first unless it would save less than the next group; then the search moves on.
  const int64_t next_bytes =
      pending_.empty() ? 0 : makeTrial(pending_.front().parts, "").bytes_saved;
  for (auto it = retries.rbegin(); it != retries.rend(); ++it) {
    auto t = makeTrial({*it}, groupLabel(*it, ", half"));
    t.pass = trial.pass;
    if (t.bytes_saved > 0 && t.bytes_saved >= next_bytes) pending_.insert(pending_.begin(), t);
  }
  return accepted;
}

}  // namespace gemel::merge
