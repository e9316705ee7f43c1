#include "gemel/merge/search.h"

#include <torch/torch.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "gemel/core/log.h"
#include "gemel/data/dataset.h"
#include "gemel/dist/cluster.h"
#include "gemel/dist/grad_sync.h"
#include "gemel/dist/placement.h"
#include "gemel/merge/catalog.h"
#include "gemel/merge/planner.h"
#include "gemel/merge/tying.h"
#include "gemel/train/task.h"

namespace gemel::merge {
namespace {

namespace fs = std::filesystem;

std::string fixed(double v, int digits) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(digits);
  o << v;
  return o.str();
}

}  // namespace

void printSummary(const io::Results& r, const std::vector<double>& accuracy) {
  const double pct = r.total_bytes > 0 ? 100.0 * r.achieved_savings / r.total_bytes : 0;
  std::printf("\nweight bytes: %s before, %s after merging: %s saved (%.1f%%; %.1f%% possible)\n",
              formatBytes(r.total_bytes).c_str(),
              formatBytes(r.total_bytes - r.achieved_savings).c_str(),
              formatBytes(r.achieved_savings).c_str(), pct,
              r.total_bytes > 0 ? 100.0 * r.possible_savings / r.total_bytes : 0.0);
  std::printf("  %-26s %10s %10s %10s  %s\n", "task", "unmerged", "target", "merged", "");
  for (std::size_t i = 0; i < r.tasks.size(); ++i) {
    const auto& t = r.tasks[i];
    const double a = i < accuracy.size() ? accuracy[i] : t.final_acc;
    std::printf("  %-26s %10.4f %10.4f %10.4f  %s\n", t.name.c_str(), t.unmerged_acc, t.target_acc,
                a, a >= t.target_acc ? "ok" : "BELOW TARGET");
  }
}

namespace {

// --- catalog and state dicts across ranks ---

std::string serializeModel(const CatalogModel& m) {
  std::ostringstream o;
  o << m.name << '\t' << m.arch << '\t' << m.total_bytes << '\n';
  for (const auto& l : m.layers) {
    o << l.module << '\t' << static_cast<int>(l.kind) << '\t' << l.hyper << '\t' << l.bytes << '\t';
    for (std::size_t i = 0; i < l.params.size(); ++i) {
      o << (i ? ";" : "") << l.params[i] << '=';
      for (std::size_t d = 0; d < l.shapes[i].size(); ++d) o << (d ? "," : "") << l.shapes[i][d];
    }
    o << '\n';
  }
  return o.str();
}

CatalogModel parseModel(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  CatalogModel m;
  std::getline(in, line);
  std::istringstream head(line);
  std::getline(head, m.name, '\t');
  std::getline(head, m.arch, '\t');
  head >> m.total_bytes;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    models::LayerInfo l;
    std::string kind, bytes, params;
    std::getline(ls, l.module, '\t');
    std::getline(ls, kind, '\t');
    std::getline(ls, l.hyper, '\t');
    std::getline(ls, bytes, '\t');
    std::getline(ls, params, '\t');
    l.kind = static_cast<models::LayerKind>(std::stoi(kind));
    l.bytes = std::stoll(bytes);
    std::istringstream ps(params);
    std::string p;
    while (std::getline(ps, p, ';')) {
      const auto eq = p.find('=');
      l.params.push_back(p.substr(0, eq));
      std::vector<int64_t> shape;
      std::istringstream ds(p.substr(eq + 1));
      std::string d;
      while (std::getline(ds, d, ',')) shape.push_back(std::stoll(d));
      l.shapes.push_back(shape);
    }
    m.layers.push_back(std::move(l));
  }
  return m;
}

std::vector<char> packState(const models::StateDict& state) {
  std::vector<char> out;
  auto put = [&](const void* p, std::size_t n) {
    out.insert(out.end(), static_cast<const char*>(p), static_cast<const char*>(p) + n);
  };
  const int64_t count = static_cast<int64_t>(state.size());
  put(&count, sizeof count);
  for (const auto& [name, tensor] : state) {
    const auto t = tensor.detach().to(torch::kCPU).contiguous();
    const int64_t len = static_cast<int64_t>(name.size()),
                  type = static_cast<int64_t>(t.scalar_type()), dims = t.dim();
    put(&len, sizeof len);
    put(name.data(), name.size());
    put(&type, sizeof type);
    put(&dims, sizeof dims);
    for (const auto d : t.sizes()) put(&d, sizeof d);
    put(t.data_ptr(), t.numel() * t.element_size());
  }
  return out;
}

models::StateDict unpackState(const std::vector<char>& bytes) {
  std::size_t at = 0;
  auto get = [&](void* p, std::size_t n) {
    GEMEL_ASSERT(at + n <= bytes.size(), "truncated weights message");
    std::memcpy(p, bytes.data() + at, n);
    at += n;
  };
  int64_t count = 0;
  get(&count, sizeof count);
  models::StateDict state;
  for (int64_t i = 0; i < count; ++i) {
    int64_t len = 0, type = 0, dims = 0;
    get(&len, sizeof len);
    std::string name(static_cast<std::size_t>(len), '\0');
    get(name.data(), name.size());
    get(&type, sizeof type);
    get(&dims, sizeof dims);
    std::vector<int64_t> sizes(static_cast<std::size_t>(dims));
    for (auto& d : sizes) get(&d, sizeof d);
    auto t =
        torch::empty(sizes, torch::TensorOptions().dtype(static_cast<torch::ScalarType>(type)));
    get(t.data_ptr(), t.numel() * t.element_size());
    state.emplace_back(std::move(name), std::move(t));
  }
  return state;
}

std::vector<int> unionRanks(const dist::Placement& placement, const std::set<int>& tasks) {
  std::set<int> ranks;
  for (const int t : tasks) ranks.insert(placement.ranksOf(t).begin(), placement.ranksOf(t).end());
  return {ranks.begin(), ranks.end()};
}

struct Fault {
  int rank = -1;
  int64_t step = -1;
  bool kill = false;
};

// The results a resumed merge picks up from, checked against the workload.
io::Results readForResume(const std::string& path, const config::Workload& w,
                          const LayerCatalog& catalog, const std::string& workload_path) {
  GEMEL_THROW_IF_NOT(fs::exists(path), InputError,
                     "{}: nothing to resume from; run gemel merge without --resume to start", path);
  auto r = io::readResults(path);
  std::string had, has;
  for (const auto& t : r.tasks) had += (had.empty() ? "" : ", ") + t.name + " (" + t.arch + ")";
  for (std::size_t i = 0; i < w.tasks.size(); ++i) {
    has += (has.empty() ? "" : ", ") + w.tasks[i].name + " (" + catalog.models()[i].arch + ")";
  }
  GEMEL_THROW_IF_NOT(
      had == has, ConfigError,
      "{}: was written for the tasks [{}], but {} has [{}]; resume with the workload "
      "it was started with, or merge into a new --out directory",
      path, had, workload_path, has);
  return r;
}

// One row of the trial table.
void printTrialRow(const io::TrialRecord& t, const std::map<std::string, double>& targets,
                   int64_t total_bytes) {
  std::string per;
  for (std::size_t k = 0; k < t.trained.size(); ++k) {
    per += format("{} {}/{}  ", t.trained[k], fixed(t.accuracy[k], 3),
                  fixed(targets.at(t.trained[k]), 3));
  }
  std::printf("%-5d %-34s %-9s %-10s %ssaved %s (%.1f%%) %.0fs\n", t.number,
              t.label.substr(0, 34).c_str(),
              format("{}/{}", t.met.size(), t.trained.size()).c_str(), t.decision.c_str(),
              per.c_str(), formatBytes(t.bytes_saved).c_str(),
              100.0 * t.bytes_saved / std::max<int64_t>(1, total_bytes), t.seconds);
  std::fflush(stdout);
}

Fault parseFault(std::string text) {
  Fault f;
  if (text.empty() && std::getenv("GEMEL_FAULT")) text = std::getenv("GEMEL_FAULT");
  if (text.empty()) return f;
  const auto a = text.find(':');
  GEMEL_THROW_IF_NOT(a != std::string::npos, UsageError,
                     "GEMEL_FAULT '{}': expected RANK:STEP[:kill]", text);
  f.rank = std::stoi(text.substr(0, a));
  const auto b = text.find(':', a + 1);
  f.step = std::stoll(text.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1));
  f.kill = b != std::string::npos && text.substr(b + 1) == "kill";
  return f;
}

}  // namespace

io::Results runMerge(const config::Workload& w, const std::string& workload_path,
                     const MergeOptions& o) {
  using Clock = std::chrono::steady_clock;
  auto start = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  const auto& cluster = dist::Cluster::get();
  const int rank = cluster.rank();
  const bool lead = rank == 0;
  const auto results_path = (fs::path(o.out_dir) / "results.h5").string();
  if (lead) fs::create_directories(o.out_dir);
  const auto fault = parseFault(o.fault);
  const int n_tasks = static_cast<int>(w.tasks.size());

  // Placement: every rank computes the same one from the tasks' estimated costs.
  std::vector<dist::TaskCost> costs;
  for (const auto& t : w.tasks) {
    const data::DatasetReader header(t.dataset);
    const auto& info = header.info();
    costs.push_back(
        {t.name, dist::estimateTaskCost(t.arch, info.height, info.width, header.size("train"))});
  }
  const dist::Placement placement(costs, cluster.size());
  if (cluster.distributed())
    log::info("merge", "placement on {} ranks:\n{}", cluster.size(), placement.describe(costs));

  // This rank's tasks; the others are null here.
  std::vector<std::unique_ptr<train::TaskRuntime>> owned;
  std::vector<train::TaskRuntime*> local(n_tasks, nullptr);
  std::vector<double> replicas(n_tasks, 1);
  for (const auto& slot : placement.slotsOf(rank)) {
    owned.push_back(std::make_unique<train::TaskRuntime>(
        w.tasks[slot.task], slot.task, o.device, static_cast<uint64_t>(w.search.seed),
        train::Placement{slot.replica, slot.replicas}));
    local[slot.task] = owned.back().get();
  }
  std::vector<models::Model*> models(n_tasks, nullptr);
  for (int t = 0; t < n_tasks; ++t) {
    replicas[t] = static_cast<double>(placement.ranksOf(t).size());
    if (local[t]) models[t] = &local[t]->model();
  }

  // The catalog: each task's owner describes its model, everyone receives it.
  std::vector<CatalogModel> described;
  for (int t = 0; t < n_tasks; ++t) {
    const int owner = placement.owner(t);
    std::string text =
        rank == owner ? serializeModel(describeModel(w.tasks[t].name, *models[t])) : "";
    cluster.broadcast(text, owner);
    described.push_back(parseModel(text));
  }
  const LayerCatalog catalog(std::move(described));

  // --resume: every rank reads the last results (rank 0 replaces the file only after this).
  std::optional<io::Results> previous;
  if (o.resume) previous = readForResume(results_path, w, catalog, workload_path);

  // Unmerged accuracies: recorded (resume), given, or measured (replicas each on their shard).
  std::vector<double> unmerged(n_tasks, 0), target(n_tasks, 0);
  {
    std::vector<train::TrialTask> unknown;
    for (int t = 0; t < n_tasks; ++t) {
      if (!previous && !w.tasks[t].unmerged_acc)
        unknown.push_back({t, w.tasks[t].name, 0, local[t]});
    }
    train::Collectives sum;
    sum.sum = [&](std::vector<int64_t>& v) { cluster.sumInPlace(v); };
    const auto measured = train::JointTrainer(unknown, {}, sum).validateAll();
    for (std::size_t k = 0; k < unknown.size(); ++k) {
      unmerged[unknown[k].index] = measured[k];
      log::info("merge", "{}: unmerged accuracy {} (measured)", unknown[k].name,
                fixed(measured[k], 4));
    }
    for (int t = 0; t < n_tasks; ++t) {
      if (previous) {
        unmerged[t] = previous->tasks[t].unmerged_acc;
        target[t] = previous->tasks[t].target_acc;
        continue;
      }
      if (w.tasks[t].unmerged_acc) unmerged[t] = *w.tasks[t].unmerged_acc;
      target[t] = unmerged[t] * w.tasks[t].accuracy_target;
    }
  }
  std::unique_ptr<Planner> planner;
  if (lead)
    planner = std::make_unique<Planner>(catalog, parseStrategy(w.search.strategy), w.search.groups);
  log::info("merge", "{} tasks, {} weight bytes ({}); sharing could save {} in {} groups", n_tasks,
            catalog.totalBytes(), formatBytes(catalog.totalBytes()),
            formatBytes(catalog.savingsBytes()), catalog.groups().size());

  dist::CommunicatorCache comms(dist::resolveBackend(o.backend, o.device), o.device);
  log::info("merge", "training on {}", o.device.str());
  if (cluster.distributed()) {
    log::info("merge", "gradient synchronisation: {} backend", dist::toString(comms.backend()));
  }

  // Shared-layer lookups for a plan: (task, module) -> instance.
  auto instanceOf = [&](const SharingPlan& plan) {
    std::map<std::pair<int, std::string>, SharingPlan::Key> out;
    for (const auto& [key, members] : plan.instances()) {
      for (const auto& ref : catalog.groups()[key.first].instances[key.second].members) {
        if (members.count(ref.model)) out[{ref.model, ref.module}] = key;
      }
    }
    return out;
  };
  // Every rank set a plan needs a communicator for, in one global order.
  auto prepareComms = [&](const SharingPlan& plan) {
    std::set<std::vector<int>> sets;
    for (int t = 0; t < n_tasks; ++t) {
      if (placement.ranksOf(t).size() >= 2) sets.insert(placement.ranksOf(t));
    }
    for (const auto& [key, members] : plan.instances()) {
      const auto r = unionRanks(placement, members);
      if (r.size() >= 2) sets.insert(r);
    }
    comms.prepare({sets.begin(), sets.end()});
  };
  // Ties the plan and makes every shared tensor hold its source's values on every rank.
  auto apply = [&](const SharingPlan& plan, const Snapshot& snap, const SharingPlan& previous,
                   const std::vector<bool>& current) {
    prepareComms(plan);
    const auto sources = materialize(models, catalog, plan, snap, previous, current);
    torch::NoGradGuard no_grad;
    for (const auto& [key, members] : plan.instances()) {
      const auto ranks = unionRanks(placement, members);
      auto* comm = ranks.size() >= 2 ? comms.get(ranks) : nullptr;
      if (!comm) continue;
      const int source = sources.at(key);
      const int root = static_cast<int>(
          std::find(ranks.begin(), ranks.end(), placement.owner(source)) - ranks.begin());
      int holder = -1;
      for (const int m : members) {
        if (holder < 0 && models[m]) holder = m;
      }
      const auto& ref = catalog.groups()[key.first].instances[key.second].members;
      std::string module;
      for (const auto& r : ref) module = r.model == holder ? r.module : module;
      for (const auto& [name, tensor] : models[holder]->namedParameters()) {
        if (name == module + ".weight" || name == module + ".bias") {
          auto data = tensor.detach();
          comm->broadcast(data, root);
        }
      }
    }
  };
  // Gradient and buffer synchronisation for a plan.
  auto collectives = [&](const SharingPlan& plan, std::shared_ptr<dist::GradSync>& grads,
                         std::shared_ptr<dist::GradSync>& buffers) {
    train::Collectives c;
    c.sum = [&](std::vector<int64_t>& v) { cluster.sumInPlace(v); };
    c.max = [&](int64_t v) { return cluster.max(v); };
    if (!cluster.distributed()) return c;
    const auto shared = instanceOf(plan);
    std::vector<dist::SyncEntry> grad_entries, buffer_entries;
    std::set<std::string> seen;
    for (int t = 0; t < n_tasks; ++t) {
      if (!models[t]) continue;
      for (const auto& [name, tensor] : models[t]->namedParameters()) {
        const auto dot = name.rfind('.');
        const auto it = shared.find({t, name.substr(0, dot)});
        dist::SyncEntry e;
        e.tensor = tensor;
        if (it != shared.end()) {
          e.key = format("s:{}:{}:{}", it->second.first, it->second.second, name.substr(dot + 1));
          e.ranks = unionRanks(placement, plan.instances().at(it->second));
        } else {
          e.key = format("p:{}:{}", t, name);
          e.ranks = placement.ranksOf(t);
        }
        if (e.ranks.size() >= 2 && seen.insert(e.key).second) grad_entries.push_back(e);
      }
      if (placement.ranksOf(t).size() >= 2) {
        for (const auto& [name, tensor] : models[t]->namedBuffers()) {
          if (torch::isFloatingType(tensor.scalar_type()))
            buffer_entries.push_back({format("b:{}:{}", t, name), tensor, placement.ranksOf(t)});
        }
      }
    }
    grads = std::make_shared<dist::GradSync>(comms, grad_entries, int64_t(25) << 20, true);
    buffers = std::make_shared<dist::GradSync>(comms, buffer_entries);
    c.reduce_gradients = [grads](const std::vector<torch::Tensor>&) { grads->reduceGradients(); };
    c.sync_buffers = [buffers] { buffers->averageValues(); };
    return c;
  };
  auto trialTasks = [&](const std::set<int>& involved) {
    std::vector<train::TrialTask> out;
    for (const int t : involved)
      out.push_back({t, w.tasks[t].name, target[t], local[t], 1.0 / replicas[t]});
    return out;
  };

  io::Results results;
  const auto yaml = readFile(workload_path, "workload file");
  results.workload_yaml.assign(yaml.begin(), yaml.end());
  results.workload_path = fs::absolute(workload_path).string();
  results.total_bytes = catalog.totalBytes();
  results.possible_savings = catalog.savingsBytes();
  results.timeline.emplace_back(0.0, catalog.totalBytes());

  SharingPlan accepted;
  std::vector<double> accuracy = unmerged;
  if (previous) {
    // Rank 0 replays the recorded outcomes through a fresh planner: the search is
    // deterministic, so this rebuilds its queue exactly, and must end at the recorded plan.
    std::string plan_text;
    if (lead) {
      std::map<std::string, int> index;
      for (int t = 0; t < n_tasks; ++t) index[w.tasks[t].name] = t;
      for (const auto& rec : previous->trials) {
        const auto trial = planner->next();
        GEMEL_THROW_IF_NOT(trial && trial->label == rec.label, ConfigError,
                           "{}: trial {} tried {}, but this workload's search proposes {}; the "
                           "search settings changed since: merge into a new --out directory",
                           results_path, rec.number, rec.label, trial ? trial->label : "nothing");
        std::set<int> met;
        const bool kept = rec.decision == "accepted" || rec.decision.rfind("partial", 0) == 0;
        for (const auto& name : rec.met) {
          if (kept) met.insert(index.at(name));
        }
        planner->report(*trial, met);
      }
      GEMEL_THROW_IF_NOT(planner->accepted().json() == previous->plan_json, InputError,
                         "{}: its trials do not lead to its recorded plan (/search/state); the "
                         "file was altered: merge into a new --out directory",
                         results_path);
      plan_text = planner->accepted().serialize();
    }
    cluster.broadcast(plan_text, 0);
    accepted = SharingPlan::parse(plan_text);
    for (int t = 0; t < n_tasks; ++t) {
      accuracy[t] = previous->tasks[t].final_acc;
      if (!local[t]) continue;
      local[t]->model().loadStateDict(io::fullStateDict(*previous, w.tasks[t].name),
                                      {false, results_path});
      if (!previous->streams.empty())
        local[t]->resumeStream(previous->streams[t].first, previous->streams[t].second);
    }
    results.trials = previous->trials;
    if (!previous->timeline.empty()) {
      results.timeline = previous->timeline;
      start -= std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(previous->timeline.back().first));
    }
    log::info("merge", "resuming {}: {} trials done, {} saved; the search goes on from trial {}",
              results_path, previous->trials.size(), formatBytes(accepted.bytesSaved(catalog)),
              previous->trials.size() + 1);
  }
  auto snapshot = takeSnapshot(models);
  if (previous) apply(accepted, snapshot, accepted, {});

  // Rank 0 gathers every task's accepted weights (from its owner) and writes results.h5.
  auto record = [&](const std::string& status) {
    Snapshot all(n_tasks);
    for (int t = 0; t < n_tasks; ++t) {
      const int owner = placement.owner(t);
      if (owner == 0) {
        if (lead) all[t] = snapshot[t];
      } else if (rank == owner) {
        cluster.send(packState(snapshot[t]), 0, 100 + t);
      } else if (lead) {
        all[t] = unpackState(cluster.receive(owner, 100 + t));
      }
    }
    std::vector<int64_t> streams(2 * n_tasks, 0);
    for (int t = 0; t < n_tasks; ++t) {
      if (rank != placement.owner(t)) continue;
      streams[2 * t] = local[t]->batchesTaken();
      streams[2 * t + 1] = local[t]->stepsTaken();
    }
    cluster.sumInPlace(streams);
    if (!lead) return;
    results.status = status;
    results.streams.clear();
    for (int t = 0; t < n_tasks; ++t)
      results.streams.emplace_back(streams[2 * t], streams[2 * t + 1]);
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
        for (const auto& leaf : {"weight", "bias"}) {
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
      t.unmerged_acc = unmerged[i];
      t.target_acc = target[i];
      t.final_acc = accuracy[i];
      t.mean = c.transforms.mean;
      t.std = c.transforms.std;
      for (const auto& [n, tensor] : all[i]) {
        if (!shared_names[i].count(n)) t.params.emplace_back(n, tensor);
      }
      results.tasks.push_back(std::move(t));
    }
    writeResults(results_path, results);
  };
  record("running");

  std::map<std::string, double> targets;
  for (int t = 0; t < n_tasks; ++t) targets[w.tasks[t].name] = target[t];
  if (lead && o.print_table) {
    std::printf("%-5s %-34s %-9s %-10s %s\n", "trial", "layers tried", "met", "decision",
                "accuracy/target per task, saved so far, seconds");
    for (const auto& rec : results.trials) printTrialRow(rec, targets, catalog.totalBytes());
    std::fflush(stdout);
  }
  for (;;) {
    // Rank 0 proposes; everyone learns the trial.
    std::string text;
    if (lead) {
      auto next = planner->next();
      if (next && !(o.max_trials > 0 && next->number > o.max_trials)) text = serializeTrial(*next);
    }
    cluster.broadcast(text, 0);
    if (text.empty()) break;
    const Trial trial = parseTrial(text);
    const auto trial_start = elapsed();
    const auto trial_plan = accepted.with(trial);
    const auto involved_set = trial_plan.models();
    apply(trial_plan, snapshot, accepted, {});
    auto to = train::TrainOptions::fromSearch(w.search);
    to.max_steps = o.max_steps_per_trial;
    if (o.fixed_steps > 0) {
      to.max_steps = o.fixed_steps;
      to.epochs = 1e9;
      to.seconds = 0;
      to.early_stop = false;
      to.adaptive = false;
    }
    to.label = format("trial {} ({})", trial.number, trial.label);
    std::shared_ptr<dist::GradSync> grads, buffers;
    auto coll = collectives(trial_plan, grads, buffers);
    if (fault.rank == rank && trial.number == 1) {
      coll.on_step = [fault](int64_t step) {
        if (step != fault.step) return;
        if (fault.kill) std::raise(SIGKILL);
        throw Error(format("fault injected at step {} (GEMEL_FAULT)", step));
      };
    }
    train::JointTrainer trainer(trialTasks(involved_set), to, coll);
    const auto outcome = trainer.run();

    std::set<int> met;
    std::vector<double> trial_acc = accuracy;
    std::vector<int> involved(involved_set.begin(), involved_set.end());
    for (std::size_t k = 0; k < involved.size(); ++k) {
      trial_acc[involved[k]] = outcome.accuracy[k];
      if (outcome.met[k]) met.insert(involved[k]);
    }
    const auto candidates = trial.models();
    bool others_ok = true;  // involved tasks outside the trial that it must not break
    for (const int m : involved_set) {
      if (!met.count(m) && !std::count(candidates.begin(), candidates.end(), m)) others_ok = false;
    }
    std::string decision;
    std::set<int> report_met;  // what rank 0 tells the planner
    if (!outcome.nan_loss && others_ok && met.size() == involved_set.size()) {
      report_met = met;
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
        for (const auto& part : trial.parts) {
          TrialPart ok = part;
          ok.models.clear();
          for (const int m : part.models) {
            if (met.count(m)) ok.models.push_back(m);
          }
          tentative.add(ok);
        }
        auto next_snapshot = takeSnapshot(models);
        std::vector<bool> current(n_tasks, true);
        for (const int m : involved_set) {
          if (!met.count(m)) {
            next_snapshot[m] = snapshot[m];
            current[m] = false;
          }
        }
        apply(tentative, next_snapshot, tentative, current);
        const auto check_set = tentative.models();
        std::shared_ptr<dist::GradSync> g2, b2;
        train::JointTrainer checker(trialTasks(check_set), to, collectives(tentative, g2, b2));
        const auto checked = checker.validateAll();
        partial = true;
        std::vector<double> check = accuracy;
        std::size_t k = 0;
        for (const int m : check_set) {
          check[m] = checked[k++];
          partial = partial && check[m] >= target[m];
        }
        if (partial) {
          report_met = met;
          snapshot = takeSnapshot(models);
          accuracy = check;
          decision = format("partial {}/{}", met_candidates, candidates.size());
        }
      }
      if (!partial) decision = outcome.nan_loss ? "failed (NaN)" : "rejected";
    }
    // Rank 0 decides; everyone adopts its plan.
    std::string plan_text;
    if (lead) {
      planner->report(trial, report_met);
      plan_text = planner->accepted().serialize();
    }
    cluster.broadcast(plan_text, 0);
    accepted = SharingPlan::parse(plan_text);

    const int64_t saved = accepted.bytesSaved(catalog);
    results.timeline.emplace_back(elapsed(), catalog.totalBytes() - saved);
    io::TrialRecord rec;
    rec.number = trial.number;
    rec.label = trial.label;
    rec.decision = decision;
    for (const int m : candidates) rec.models.push_back(w.tasks[m].name);
    for (const int m : met) rec.met.push_back(w.tasks[m].name);
    for (std::size_t k = 0; k < involved.size(); ++k) {
      rec.trained.push_back(w.tasks[involved[k]].name);
      rec.accuracy.push_back(outcome.accuracy[k]);
    }
    rec.bytes_saved = saved;
    rec.steps = outcome.steps;
    rec.seconds = elapsed() - trial_start;
    results.trials.push_back(rec);
    apply(accepted, snapshot, accepted, {});  // back to the accepted state
    record("running");
    if (lead && o.print_table) printTrialRow(rec, targets, catalog.totalBytes());
  }
  // Final: the accepted models, validated once more.
  apply(accepted, snapshot, accepted, {});
  {
    std::set<int> all;
    for (int t = 0; t < n_tasks; ++t) all.insert(t);
    std::shared_ptr<dist::GradSync> g, b;
    train::JointTrainer checker(trialTasks(all), {}, collectives(accepted, g, b));
    accuracy = checker.validateAll();
  }
  record("done");
  log::info(
      "merge", "{}: {} trials, {} saved ({}%), {} s", results_path, results.trials.size(),
      formatBytes(accepted.bytesSaved(catalog)),
      fixed(100.0 * accepted.bytesSaved(catalog) / std::max<int64_t>(1, catalog.totalBytes()), 1),
      fixed(elapsed(), 1));
  return results;
}

}  // namespace gemel::merge
