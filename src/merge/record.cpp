#include "gemel/merge/record.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "gemel/core/format.h"
#include "gemel/data/dataset.h"
#include "gemel/models/archs.h"
#include "gemel/train/objective.h"
#include "gemel/train/precision.h"
#include "gemel/train/task.h"

namespace gemel::merge {

void fillRecords(io::Results& results, const SharingPlan& accepted, const LayerCatalog& catalog,
                 const Snapshot& all, const config::Workload& w, const TaskScores& scores,
                 const std::vector<int>& input_sizes) {
  const int n_tasks = static_cast<int>(w.tasks.size());
  results.achieved_savings = accepted.bytesSaved(catalog);
  results.plan_json = accepted.json();
  results.tasks.clear();
  results.shared.clear();
  std::vector<std::set<std::string>> shared_names(n_tasks);
  for (const auto& [key, members] : accepted.instances()) {
    const auto& g = catalog.groups()[key.first];
    io::SharedRecord s;
    s.id = "g" + std::to_string(g.id) + "_i" + std::to_string(key.second);
    s.signature = g.signature;
    const int source = *members.begin();
    for (const auto& ref : g.instances[key.second].members) {
      if (!members.count(ref.model)) continue;
      s.members.push_back(memberName(catalog, ref.model, ref.module));
      for (const auto& leaf : catalog.layer(ref.model, ref.module).params) {
        const auto name = ref.module + "." + leaf;
        for (const auto& [n, tensor] : all[ref.model]) {
          if (n != name) continue;
          shared_names[ref.model].insert(name);
          if (ref.model == source) s.tensors.emplace_back(leaf, tensor);
        }
      }
    }
    results.shared.push_back(std::move(s));
  }
  for (int i = 0; i < n_tasks; ++i) {
    const auto& c = w.tasks[i];
    io::TaskRecord t;
    t.name = c.name;
    t.arch = catalog.models()[i].arch;
    t.source = c.weights;
    t.dataset = c.dataset;
    t.num_classes = c.num_classes;
    t.metric = train::makeObjective(c)->metric();
    t.kind = config::toString(c.kind);
    const auto precision = train::resolveTaskPrecision(c.precision, train::defaultDevice(), c.arch);
    t.precision = train::toString(precision);
    t.channels_last = train::resolveChannelsLast(c.channels_last, precision);
    t.image_size = input_sizes[i];
    t.unmerged_score = scores.unmerged[i];
    t.target = scores.target[i];
    t.final_score = scores.current[i];
    t.mean = c.transforms.mean;
    t.std = c.transforms.std;
    for (const auto& [n, tensor] : all[i]) {
      if (!shared_names[i].count(n)) t.params.emplace_back(n, tensor);
    }
    results.tasks.push_back(std::move(t));
  }
}

std::vector<int> inputSizes(const config::Workload& w) {
  std::vector<int> out;
  for (const auto& c : w.tasks) {
    if (c.kind == config::TaskKind::kDetection) {
      out.push_back(c.image_size);
    } else {
      out.push_back(static_cast<int>(data::DatasetReader(c.dataset).info().height));
    }
  }
  return out;
}

void printTrialRow(const io::TrialRecord& t, const std::vector<double>& targets,
                   const config::Workload& w, int64_t total_bytes) {
  auto targetOf = [&](const std::string& name) {
    for (std::size_t i = 0; i < w.tasks.size(); ++i) {
      if (w.tasks[i].name == name) return targets[i];
    }
    return 0.0;
  };
  std::string per;
  for (std::size_t k = 0; k < t.trained.size(); ++k) {
    const bool dropped = std::count(t.dropped.begin(), t.dropped.end(), t.trained[k]) > 0;
    per += format("{} {}/{}{}  ", t.trained[k], formatFixed(t.scores[k], 3),
                  formatFixed(targetOf(t.trained[k]), 3), dropped ? " (dropped)" : "");
  }
  std::printf("%-5d %-34s %-9s %-10s %ssaved %s (%.1f%%) %.0fs\n", t.number,
              t.label.substr(0, 34).c_str(),
              format("{}/{}", t.met.size(), t.trained.size()).c_str(), t.decision.c_str(),
              per.c_str(), formatBytes(t.bytes_saved).c_str(),
              100.0 * t.bytes_saved / std::max<int64_t>(1, total_bytes), t.seconds);
  if (!t.checked.empty()) {
    std::string check;
    for (std::size_t k = 0; k < t.checked.size(); ++k) {
      check += format("{} {}/{}  ", t.checked[k], formatFixed(t.check_scores[k], 3),
                      formatFixed(targetOf(t.checked[k]), 3));
    }
    std::printf("%-5s %-34s %-9s %-10s %s\n", "", "  partial check", "", "", check.c_str());
  }
  std::fflush(stdout);
}

}  // namespace gemel::merge
