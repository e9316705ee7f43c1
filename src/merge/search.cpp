#include "gemel/merge/search.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "gemel/core/log.h"
#include "gemel/merge/catalog.h"
#include "gemel/merge/planner.h"
#include "gemel/merge/tying.h"
#include "gemel/train/task.h"

namespace gemel::merge {
namespace {

namespace fs = std::filesystem;

std::string mib(int64_t bytes) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(1);
  o << bytes / 1048576.0 << " MiB";
  return o.str();
}

std::string fixed(double v, int digits) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(digits);
  o << v;
  return o.str();
}

std::string planJson(const SharingPlan& plan) {
  std::ostringstream o;
  o << "[";
  bool first = true;
  for (const auto& [key, models] : plan.instances()) {
    o << (first ? "" : ",") << "[" << key.first << "," << key.second << ",[";
    bool f2 = true;
    for (const int m : models) o << (f2 ? "" : ",") << m, f2 = false;
    o << "]]";
    first = false;
  }
  o << "]";
  return o.str();
}

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

void printSummary(const io::Results& r, const std::vector<double>& accuracy) {
  const double pct = r.total_bytes > 0 ? 100.0 * r.achieved_savings / r.total_bytes : 0;
  std::printf("\nweight bytes: %s before, %s after merging: %s saved (%.1f%%; %.1f%% possible)\n",
              mib(r.total_bytes).c_str(), mib(r.total_bytes - r.achieved_savings).c_str(),
              mib(r.achieved_savings).c_str(), pct,
              r.total_bytes > 0 ? 100.0 * r.possible_savings / r.total_bytes : 0.0);
  std::printf("  %-26s %10s %10s %10s  %s\n", "task", "unmerged", "target", "merged", "");
  for (std::size_t i = 0; i < r.tasks.size(); ++i) {
    const auto& t = r.tasks[i];
    const double a = i < accuracy.size() ? accuracy[i] : t.final_acc;
    std::printf("  %-26s %10.4f %10.4f %10.4f  %s\n", t.name.c_str(), t.unmerged_acc, t.target_acc,
                a, a >= t.target_acc ? "ok" : "BELOW TARGET");
  }
}

io::Results runMerge(const config::Workload& w, const std::string& workload_path,
                     const MergeOptions& o) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  fs::create_directories(o.out_dir);
  const auto results_path = (fs::path(o.out_dir) / "results.h5").string();
  torch::manual_seed(static_cast<uint64_t>(w.search.seed));

  // Tasks, their unmerged accuracies and targets.
  std::vector<std::unique_ptr<train::TaskRuntime>> tasks;
  std::vector<models::Model*> models;
  std::vector<CatalogModel> described;
  for (std::size_t i = 0; i < w.tasks.size(); ++i) {
    tasks.push_back(std::make_unique<train::TaskRuntime>(w.tasks[i], static_cast<int>(i), o.device,
                                                         static_cast<uint64_t>(w.search.seed)));
    auto& t = *tasks.back();
    if (w.tasks[i].unmerged_acc) {
      t.unmerged_acc = *w.tasks[i].unmerged_acc;
    } else {
      t.unmerged_acc = t.validate().value();
      log::info("merge", "{}: unmerged accuracy {} (measured on {} val images)", t.name(),
                fixed(t.unmerged_acc, 4), t.dataset().size("val"));
    }
    t.target_acc = t.unmerged_acc * w.tasks[i].accuracy_target;
    models.push_back(&t.model());
    described.push_back(describeModel(t.name(), t.model()));
  }
  const LayerCatalog catalog(std::move(described));
  Planner planner(catalog, parseStrategy(w.search.strategy), w.search.groups);
  log::info("merge", "{} tasks, {} weight bytes ({}); sharing could save {} in {} groups",
            tasks.size(), catalog.totalBytes(), mib(catalog.totalBytes()),
            mib(catalog.savingsBytes()), catalog.groups().size());

  io::Results results;
  results.workload_yaml = readText(workload_path);
  results.workload_path = fs::absolute(workload_path).string();
  results.total_bytes = catalog.totalBytes();
  results.possible_savings = catalog.savingsBytes();
  results.timeline.emplace_back(0.0, catalog.totalBytes());

  SharingPlan accepted;
  auto snapshot = takeSnapshot(models);
  std::vector<double> accuracy;
  for (const auto& t : tasks) accuracy.push_back(t->unmerged_acc);

  // Fills results from the models in their accepted state (materialized).
  auto record = [&](const std::string& status) {
    results.status = status;
    results.achieved_savings = accepted.bytesSaved(catalog);
    results.plan_json = planJson(accepted);
    results.tasks.clear();
    results.shared.clear();
    std::vector<std::set<std::string>> shared_names(tasks.size());
    for (const auto& [key, members] : accepted.instances()) {
      const auto& g = catalog.groups()[key.first];
      io::SharedRecord s;
      s.id = "g" + std::to_string(g.id) + "_i" + std::to_string(key.second);
      s.signature = g.signature;
      const int source = *members.begin();
      for (const auto& ref : g.instances[key.second].members) {
        if (!members.count(ref.model)) continue;
        s.members.push_back(memberName(catalog, ref.model, ref.module));
        for (const auto& leaf : {"weight", "bias"}) {
          const auto name = ref.module + "." + leaf;
          for (const auto& [n, t] : snapshot[ref.model]) {
            if (n != name) continue;
            shared_names[ref.model].insert(name);
            if (ref.model == source) s.tensors.emplace_back(leaf, t);
          }
        }
      }
      results.shared.push_back(std::move(s));
    }
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      const auto& c = tasks[i]->config();
      io::TaskRecord t;
      t.name = c.name;
      t.arch = tasks[i]->model().arch();
      t.source = c.weights;
      t.dataset = c.dataset;
      t.num_classes = c.num_classes;
      t.unmerged_acc = tasks[i]->unmerged_acc;
      t.target_acc = tasks[i]->target_acc;
      t.final_acc = accuracy[i];
      t.mean = c.transforms.mean;
      t.std = c.transforms.std;
      for (const auto& [n, tensor] : snapshot[i]) {
        if (!shared_names[i].count(n)) t.params.emplace_back(n, tensor);
      }
      results.tasks.push_back(std::move(t));
    }
    writeResults(results_path, results);
  };
  record("running");

  if (o.print_table) {
    std::printf("%-5s %-34s %-9s %-10s %s\n", "trial", "layers tried", "met", "decision",
                "accuracy/target per task, saved so far, seconds");
    std::fflush(stdout);
  }
  while (auto trial = planner.next()) {
    if (o.max_trials > 0 && trial->number > o.max_trials) break;
    const auto trial_start = elapsed();
    const auto trial_plan = accepted.with(*trial);
    const auto involved_set = trial_plan.models();
    materialize(models, catalog, trial_plan, snapshot, accepted);
    std::vector<train::TaskRuntime*> involved;
    for (const int m : involved_set) involved.push_back(tasks[m].get());
    train::TrainOptions to;
    to.lr = w.search.lr;
    to.momentum = w.search.momentum;
    to.weight_decay = w.search.weight_decay;
    to.epochs = w.search.epochs_per_trial;
    to.seconds = w.search.seconds_per_trial;
    to.max_steps = o.max_steps_per_trial;
    to.label = format("trial {} ({})", trial->number, trial->label);
    train::JointTrainer trainer(involved, to);
    const auto outcome = trainer.run();

    std::set<int> met;
    std::vector<double> trial_acc = accuracy;
    for (std::size_t k = 0; k < involved.size(); ++k) {
      trial_acc[involved[k]->index()] = outcome.accuracy[k];
      if (outcome.met[k]) met.insert(involved[k]->index());
    }
    const auto candidates = trial->models();
    bool others_ok = true;  // involved tasks outside the trial that it must not break
    for (const int m : involved_set) {
      if (!met.count(m) && !std::count(candidates.begin(), candidates.end(), m)) others_ok = false;
    }
    std::string decision;
    if (!outcome.nan_loss && others_ok && met.size() == involved_set.size()) {
      planner.report(*trial, met);
      accepted = planner.accepted();
      snapshot = takeSnapshot(models);
      accuracy = trial_acc;
      decision = "accepted";
    } else {
      std::size_t met_candidates = 0;
      for (const int m : candidates) met_candidates += met.count(m);
      bool partial = false;
      if (!outcome.nan_loss && others_ok && met_candidates >= 2) {
        // Keep the layers for the models that met; the others go back to their accepted
        // weights. Accept only if everything validates at target that way.
        SharingPlan tentative = accepted;
        for (const auto& part : trial->parts) {
          TrialPart ok = part;
          ok.models.clear();
          for (const int m : part.models) {
            if (met.count(m)) ok.models.push_back(m);
          }
          tentative.add(ok);
        }
        auto next_snapshot = takeSnapshot(models);
        std::vector<bool> current(models.size(), true);
        for (const int m : involved_set) {
          if (!met.count(m)) {
            next_snapshot[m] = snapshot[m];
            current[m] = false;
          }
        }
        materialize(models, catalog, tentative, next_snapshot, tentative, current);
        partial = true;
        std::vector<double> check = trial_acc;
        for (const int m : tentative.models()) {
          check[m] = tasks[m]->validate().value();
          partial = partial && check[m] >= tasks[m]->target_acc;
        }
        for (std::size_t m = 0; m < tasks.size() && partial; ++m) {
          if (!tentative.models().count(static_cast<int>(m))) check[m] = accuracy[m];
        }
        if (partial) {
          planner.report(*trial, met);
          accepted = planner.accepted();
          snapshot = takeSnapshot(models);
          accuracy = check;
          decision = format("partial {}/{}", met_candidates, candidates.size());
        }
      }
      if (!partial) {
        planner.report(*trial, {});
        decision = outcome.nan_loss ? "failed (NaN)" : "rejected";
      }
    }
    const int64_t saved = accepted.bytesSaved(catalog);
    results.timeline.emplace_back(elapsed(), catalog.totalBytes() - saved);
    io::TrialRecord rec;
    rec.number = trial->number;
    rec.label = trial->label;
    rec.decision = decision;
    for (const int m : candidates) rec.models.push_back(tasks[m]->name());
    for (const int m : met) rec.met.push_back(tasks[m]->name());
    for (std::size_t k = 0; k < involved.size(); ++k) {
      rec.trained.push_back(involved[k]->name());
      rec.accuracy.push_back(outcome.accuracy[k]);
    }
    rec.bytes_saved = saved;
    rec.steps = outcome.steps;
    rec.seconds = elapsed() - trial_start;
    results.trials.push_back(rec);
    // Models back to the accepted state before recording it.
    materialize(models, catalog, accepted, snapshot, accepted);
    record("running");
    if (o.print_table) {
      std::string per;
      for (std::size_t k = 0; k < involved.size(); ++k) {
        per += format("{} {}/{}  ", involved[k]->name(), fixed(outcome.accuracy[k], 3),
                      fixed(involved[k]->target_acc, 3));
      }
      std::printf("%-5d %-34s %-9s %-10s %ssaved %s (%.1f%%) %.0fs\n", trial->number,
                  trial->label.substr(0, 34).c_str(),
                  format("{}/{}", met.size(), involved.size()).c_str(), decision.c_str(),
                  per.c_str(), mib(saved).c_str(), 100.0 * saved / catalog.totalBytes(),
                  rec.seconds);
      std::fflush(stdout);
    }
  }
  // Final: the accepted models, validated once more.
  materialize(models, catalog, accepted, snapshot, accepted);
  for (std::size_t i = 0; i < tasks.size(); ++i) accuracy[i] = tasks[i]->validate().value();
  record("done");
  log::info("merge", "{}: {} trials, {} saved ({}%), {} s", results_path, results.trials.size(),
            mib(results.achieved_savings),
            fixed(100.0 * results.achieved_savings / std::max<int64_t>(1, results.total_bytes), 1),
            fixed(elapsed(), 1));
  return results;
}

}  // namespace gemel::merge
