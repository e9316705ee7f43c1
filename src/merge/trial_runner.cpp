#include "gemel/merge/trial_runner.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "gemel/core/error.h"
#include "gemel/core/format.h"
#include "gemel/core/log.h"
#include "gemel/data/dataset.h"
#include "gemel/dist/grad_sync.h"
#include "gemel/dist/state_transfer.h"
#include "gemel/io/results.h"
#include "gemel/merge/model_layers.h"
#include "gemel/merge/wire.h"

namespace gemel::merge {

TrialRunner::TrialRunner(const config::Workload& w, const dist::Placement& placement,
                         const dist::World& world, const torch::Device& device,
                         dist::Backend backend, std::string results_path)
    : workload_(w),
      placement_(&placement),
      world_(&world),
      home_placement_(placement),
      home_world_(world),
      device_(device),
      results_path_(std::move(results_path)),
      local_(w.tasks.size(), nullptr),
      models_(w.tasks.size(), nullptr),
      held_(w.tasks.size(), nullptr),
      home_comms_(std::make_unique<dist::CommunicatorCache>(
          world, dist::resolveBackend(backend, device, world), device)),
      comms_(home_comms_.get()),
      targets_(w.tasks.size(), 0) {
  for (const auto& slot : placement.slotsOf(world.rank())) {
    owned_.push_back(std::make_unique<train::TaskRuntime>(
        w.tasks[slot.task], slot.task, device, static_cast<uint64_t>(w.search.seed),
        train::Replica{slot.replica, slot.replicas}));
    local_[slot.task] = owned_.back().get();
    held_[slot.task] = owned_.back().get();
    models_[slot.task] = &owned_.back()->model();
  }
  std::vector<CatalogModel> described;
  for (int t = 0; t < tasks(); ++t) {
    const int owner = placement.owner(t);
    described.push_back(merge::wire::unpackCatalogModel(world.share(
        world.rank() == owner ? merge::wire::pack(describeModel(w.tasks[t].name, *models_[t])) : "",
        owner)));
  }
  catalog_ = std::make_unique<LayerCatalog>(std::move(described));
}

TrialRunner::~TrialRunner() = default;

int TrialRunner::ranks() const { return world_->size(); }

std::vector<int> TrialRunner::ranksOf(const std::set<int>& tasks) const {
  std::set<int> ranks;
  for (const int t : tasks) {
    ranks.insert(placement_->ranksOf(t).begin(), placement_->ranksOf(t).end());
  }
  return {ranks.begin(), ranks.end()};
}

std::vector<train::TrialTask> TrialRunner::trialTasks(const std::set<int>& tasks,
                                                      const std::set<int>& candidates) const {
  std::vector<train::TrialTask> out;
  for (const int t : tasks) {
    out.push_back({t, workload_.tasks[t].name, targets_[t], local_[t],
                   1.0 / static_cast<double>(placement_->ranksOf(t).size()),
                   train::makeObjective(workload_.tasks[t]), candidates.count(t) > 0});
  }
  return out;
}

std::vector<double> TrialRunner::measure(const std::vector<int>& tasks) {
  std::vector<train::TrialTask> unknown;
  for (const int t : tasks) {
    unknown.push_back({t, workload_.tasks[t].name, 0, local_[t], 1.0,
                       train::makeObjective(workload_.tasks[t]), false});
  }
  train::WorldSync sync(*world_, nullptr, nullptr);  // measuring: nothing trains
  train::JointTrainer trainer(unknown, {}, sync);
  auto scores = trainer.validateAll();
  // Every val image scored once, whatever the replicas: the unmerged score sets the target.
  for (std::size_t k = 0; k < tasks.size(); ++k) {
    const auto& t = workload_.tasks[static_cast<std::size_t>(tasks[k])];
    const int64_t expected = data::DatasetReader(t.dataset).size("val");
    const int64_t scored = trainer.scoredImages()[k];
    log::info("merge", "{}: scored {} of {} val images", t.name, scored, expected);
    GEMEL_ASSERT(scored == expected, "task {}: {} val images scored, but its val split has {}",
                 t.name, scored, expected);
  }
  return scores;
}

// Every rank set the plan needs a communicator for, in one global order.
void TrialRunner::prepareComms(const SharingPlan& plan) {
  std::set<std::vector<int>> sets;
  for (int t = 0; t < tasks(); ++t) {
    if (placement_->ranksOf(t).size() >= 2) sets.insert(placement_->ranksOf(t));
  }
  for (const auto& [key, members] : plan.instances()) {
    const auto r = ranksOf(members);
    if (r.size() >= 2) sets.insert(r);
  }
  comms_->prepare({sets.begin(), sets.end()});
}

void TrialRunner::apply(const SharingPlan& plan, From from, const SharingPlan& previous,
                        const std::vector<int>& rank) {
  prepareComms(plan);
  const auto& snapshot = from == From::kAccepted ? accepted_ : staged_;
  const auto sources = materialize(models_, *catalog_, plan, snapshot, previous, rank);
  torch::NoGradGuard no_grad;
  for (const auto& [key, members] : plan.instances()) {
    const auto ranks = ranksOf(members);
    auto* comm = ranks.size() >= 2 ? comms_->get(ranks) : nullptr;
    if (!comm) continue;
    const int source = sources.at(key);
    const int root = static_cast<int>(
        std::find(ranks.begin(), ranks.end(), placement_->owner(source)) - ranks.begin());
    int holder = -1;
    for (const int m : members) {
      if (holder < 0 && models_[m]) holder = m;
    }
    std::string module;
    for (const auto& r : catalog_->groups()[key.first].instances[key.second].members) {
      module = r.model == holder ? r.module : module;
    }
    const auto params = models_[holder]->namedParameters();
    for (const auto& leaf : catalog_->layer(holder, module).params) {
      for (const auto& [name, tensor] : params) {
        if (name != module + "." + leaf) continue;
        auto data = tensor.detach();
        comm->broadcast(data, root);
      }
    }
  }
}

// How the ranks of one plan's trial agree: counts and decisions over the World; gradients of
// tensors held on several ranks, and buffers of replicated tasks, through GradSync.
std::unique_ptr<train::WorldSync> TrialRunner::synchronisation(const SharingPlan& plan) {
  if (placement_->worldSize() < 2) {
    return std::make_unique<train::WorldSync>(*world_, nullptr, nullptr);  // one rank holds all
  }
  // Shared layers: (task, module) -> instance.
  std::map<std::pair<int, std::string>, SharingPlan::Key> shared;
  for (const auto& [key, members] : plan.instances()) {
    for (const auto& ref : catalog_->groups()[key.first].instances[key.second].members) {
      if (members.count(ref.model)) shared[{ref.model, ref.module}] = key;
    }
  }
  std::vector<dist::SyncEntry> grad_entries, buffer_entries;
  std::set<std::string> seen;
  for (int t = 0; t < tasks(); ++t) {
    if (!models_[t]) continue;
    for (const auto& [name, tensor] : models_[t]->namedParameters()) {
      if (!tensor.requires_grad()) continue;  // frozen (Model::freeze): no gradient to reduce
      const auto dot = name.rfind('.');
      const auto it = shared.find({t, name.substr(0, dot)});
      dist::SyncEntry e;
      e.tensor = tensor;
      if (it != shared.end()) {
        e.key = format("s:{}:{}:{}", it->second.first, it->second.second, name.substr(dot + 1));
        e.ranks = ranksOf(plan.instances().at(it->second));
      } else {
        e.key = format("p:{}:{}", t, name);
        e.ranks = placement_->ranksOf(t);
      }
      if (e.ranks.size() >= 2 && seen.insert(e.key).second) grad_entries.push_back(e);
    }
    if (placement_->ranksOf(t).size() >= 2) {
      for (const auto& [name, tensor] : models_[t]->namedBuffers()) {
        if (torch::isFloatingType(tensor.scalar_type()))
          buffer_entries.push_back({format("b:{}:{}", t, name), tensor, placement_->ranksOf(t)});
      }
    }
  }
  return std::make_unique<train::WorldSync>(
      *world_, std::make_unique<dist::GradSync>(*comms_, grad_entries, int64_t(25) << 20, true),
      std::make_unique<dist::GradSync>(*comms_, buffer_entries));
}

train::TrialResult TrialRunner::train(const SharingPlan& plan, const train::TrainOptions& options,
                                      const std::set<int>& candidates) {
  auto sync = synchronisation(plan);
  std::unique_ptr<train::RankSync> wrapped;
  if (wrap_) wrapped = wrap_(*sync);
  train::JointTrainer trainer(trialTasks(plan.models(), candidates), options,
                              wrapped ? *wrapped : *sync);
  return trainer.run();
}

std::vector<double> TrialRunner::validate(const SharingPlan& plan, const std::set<int>& tasks,
                                          const train::TrainOptions& options) {
  auto sync = synchronisation(plan);
  train::JointTrainer checker(trialTasks(tasks), options, *sync);
  return checker.validateAll();
}

// A task this rank does not train keeps its entry (bound to a group: the committed state).
void TrialRunner::accept() {
  auto now = takeSnapshot(models_);
  if (accepted_.size() != now.size()) accepted_.resize(now.size());
  for (std::size_t t = 0; t < now.size(); ++t) {
    if (models_[t]) accepted_[t] = std::move(now[t]);
  }
}

void TrialRunner::stage(const std::set<int>& reverted) {
  staged_ = takeSnapshot(models_);
  for (const int t : reverted) staged_[t] = accepted_[t];
}

void TrialRunner::restore(const io::Results& previous) {
  for (int t = 0; t < tasks(); ++t) {
    auto* task = local_[t];
    if (!task) continue;
    task->model().loadStateDict(io::fullStateDict(previous, workload_.tasks[t].name),
                                {false, results_path_});
    if (!previous.streams.empty())
      task->resumeStream(previous.streams[t].first, previous.streams[t].second);
  }
}

// The lead gathers every task's accepted weights (from its owner) and writes results.h5.
void TrialRunner::record(io::Results& results, const SharingPlan& accepted,
                         const TaskScores& scores) {
  const int n = tasks();
  std::vector<int> owners(n);
  for (int t = 0; t < n; ++t) owners[t] = placement_->owner(t);
  const auto all = dist::gatherStates(*world_, accepted_, owners);
  std::vector<int64_t> streams(2 * n, 0);
  for (int t = 0; t < n; ++t) {
    if (world_->rank() != owners[t]) continue;
    streams[2 * t] = local_[t]->batchesTaken();
    streams[2 * t + 1] = local_[t]->stepsTaken();
  }
  world_->sum(streams);
  if (!world_->lead()) return;
  results.streams.clear();
  for (int t = 0; t < n; ++t) results.streams.emplace_back(streams[2 * t], streams[2 * t + 1]);
  if (input_sizes_.empty()) input_sizes_ = inputSizes(workload_);
  fillRecords(results, accepted, *catalog_, all, workload_, scores, input_sizes_);
  io::writeResults(results_path_, results);
}

TrialRunner::Streams TrialRunner::streams() const {
  Streams out(held_.size(), {0, 0});
  for (std::size_t t = 0; t < held_.size(); ++t) {
    if (held_[t]) out[t] = {held_[t]->batchesTaken(), held_[t]->stepsTaken()};
  }
  return out;
}

void TrialRunner::seek(const Streams& streams) {
  for (std::size_t t = 0; t < local_.size(); ++t) {
    if (local_[t] &&
        streams[t] != std::make_pair(local_[t]->batchesTaken(), local_[t]->stepsTaken()))
      local_[t]->resumeStream(streams[t].first, streams[t].second);
  }
}

void TrialRunner::settle() {
  committed_ = accepted_;
  committed_streams_ = streams();
}

void TrialRunner::hold(bool trained) {
  result_ = accepted_;
  if (trained) {
    base_ = committed_;
    result_streams_ = streams();
  } else {
    for (int t = 0; t < tasks(); ++t) {
      if (!graft_from_.count(t)) result_streams_[t] = committed_streams_[t];
    }
  }
  accepted_ = committed_;
  seek(committed_streams_);
}

// Each root packs its tasks' results (the weights wire format) behind a line "task batches
// steps bytes"; every rank unpacks them onto the devices its own copies live on.
void TrialRunner::adopt(const std::map<int, int>& roots, const dist::World& world) {
  std::map<int, std::vector<int>> by_root;
  for (const auto& [t, root] : roots) by_root[root].push_back(t);
  for (const auto& [root, tasks] : by_root) {
    std::string text;
    if (world.rank() == root) {
      for (const int t : tasks) {
        const auto bytes = dist::packState(result_[t]);
        text += format("{} {} {} {}\n", t, result_streams_[t].first, result_streams_[t].second,
                       bytes.size());
        text.append(bytes.begin(), bytes.end());
      }
    }
    text = world.share(text, root);
    std::size_t at = 0;
    while (at < text.size()) {
      const auto eol = text.find('\n', at);
      GEMEL_ASSERT(eol != std::string::npos, "truncated weights message");
      std::istringstream head(text.substr(at, eol - at));
      int t = 0;
      int64_t batches = 0, steps = 0;
      std::size_t n = 0;
      head >> t >> batches >> steps >> n;
      at = eol + 1;
      GEMEL_ASSERT(t >= 0 && t < static_cast<int>(held_.size()) && at + n <= text.size(),
                   "malformed weights message");
      auto state =
          dist::unpackState(std::vector<char>(text.begin() + static_cast<std::ptrdiff_t>(at),
                                              text.begin() + static_cast<std::ptrdiff_t>(at + n)));
      at += n;
      const auto& mine = committed_[t];
      GEMEL_ASSERT(state.size() == mine.size(), "task {}: {} tensors sent, {} held", t,
                   state.size(), mine.size());
      for (std::size_t k = 0; k < state.size(); ++k)
        state[k].second = state[k].second.to(mine[k].second.device());
      committed_[t] = state;
      accepted_[t] = state;
      committed_streams_[t] = {batches, steps};
    }
  }
  seek(committed_streams_);
}

void TrialRunner::enableGroups(std::vector<dist::TaskCost> costs, dist::Backend backend) {
  costs_ = std::move(costs);
  group_backend_ = backend;
}

void TrialRunner::bind(const dist::World& group, const std::set<int>& tasks) {
  GEMEL_ASSERT(costs_.size() == held_.size(), "bind() needs enableGroups() first");
  auto costs = costs_;
  for (std::size_t t = 0; t < costs.size(); ++t) {
    if (!tasks.count(static_cast<int>(t))) costs[t].cost = 0;  // placed, never trained
  }
  GEMEL_ASSERT(group.size() <= static_cast<int>(tasks.size()), "a group of {} ranks for {} tasks",
               group.size(), tasks.size());
  group_placement_ = std::make_unique<dist::Placement>(costs, group.size());
  placement_ = group_placement_.get();
  world_ = &group;
  std::fill(local_.begin(), local_.end(), nullptr);
  std::fill(models_.begin(), models_.end(), nullptr);
  for (const auto& slot : placement_->slotsOf(group.rank())) {
    local_[slot.task] = held_[slot.task];
    models_[slot.task] = &held_[slot.task]->model();
  }
  group_comms_ = std::make_unique<dist::CommunicatorCache>(
      group, dist::resolveBackend(group_backend_, device_, group), device_);
  comms_ = group_comms_.get();
}

void TrialRunner::unbind() {
  placement_ = &home_placement_;
  world_ = &home_world_;
  comms_ = home_comms_.get();
  group_comms_.reset();
  for (std::size_t t = 0; t < held_.size(); ++t) {
    local_[t] = held_[t];
    models_[t] = held_[t] ? &held_[t]->model() : nullptr;
  }
}

int TrialRunner::holder(int task) const { return placement_->owner(task); }

void TrialRunner::stageGraft(const std::set<int>& from_result, const std::set<int>& with_delta) {
  torch::NoGradGuard no_grad;
  staged_ = accepted_;
  graft_from_ = from_result;
  graft_from_.insert(with_delta.begin(), with_delta.end());
  for (const int t : from_result) staged_[t] = result_[t];
  for (const int t : with_delta) {
    auto state = accepted_[t];
    for (std::size_t k = 0; k < state.size(); ++k) {
      auto& tensor = state[k].second;
      if (!torch::isFloatingType(tensor.scalar_type())) continue;  // counters: the committed
      const auto& trained = result_[t][k].second;
      auto sum = tensor + (trained - base_[t][k].second);
      // A variance (BatchNorm's running_var) stays positive: no lower than either trial's.
      const auto& name = state[k].first;
      if (name.size() >= 11 && name.compare(name.size() - 11, 11, "running_var") == 0)
        sum = torch::max(sum, torch::min(tensor, trained));
      tensor = sum;
    }
    staged_[t] = std::move(state);
  }
}

}  // namespace gemel::merge
