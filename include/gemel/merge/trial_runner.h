#pragma once
// TrialRunner: this rank's side of the merge, the real TrialExecutor (executor.h). It holds the
// tasks placed on this rank (model and data), their accepted and staged weights, the catalog
// every rank agrees on, and the communicators; and it carries out what the coordinator asks,
// the same calls in the same order on every rank:
//   apply     tie a plan's layers from a snapshot (tying.h) and make every shared tensor hold
//             its source member's values on every rank that holds it;
//   train     retrain a plan's tasks jointly, gradients of tensors held on several ranks
//             all-reduced over exactly those ranks (GradSync);
//   validate  score tasks, counts summed over ranks and replicas;
//   record    gather the accepted weights on the lead, which writes results.h5.
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include <torch/types.h>

#include "gemel/config/workload.h"
#include "gemel/dist/communicator.h"
#include "gemel/dist/placement.h"
#include "gemel/dist/world.h"
#include "gemel/merge/executor.h"
#include "gemel/merge/tying.h"
#include "gemel/train/sync.h"
#include "gemel/train/task.h"

namespace gemel::merge {

class TrialRunner final : public TrialExecutor {
 public:
  // Builds this rank's tasks and, with the other ranks, the catalog (each task's owner
  // describes its model). record() writes results_path (on the lead).
  TrialRunner(const config::Workload& workload, const dist::Placement& placement,
              const dist::World& world, const torch::Device& device, dist::Backend backend,
              std::string results_path);
  ~TrialRunner() override;
  TrialRunner(const TrialRunner&) = delete;
  TrialRunner& operator=(const TrialRunner&) = delete;

  // Parallel trials: this runner was built on one rank's own World with every task placed on
  // it; bind() can then make it one rank of a group that trains some tasks, placed over the
  // group's ranks by `costs` (Placement), gradients synchronised over `backend`.
  void enableGroups(std::vector<dist::TaskCost> costs, dist::Backend backend);
  void bind(const dist::World& group, const std::set<int>& tasks) override;
  void unbind() override;
  int holder(int task) const override;

  int tasks() const override { return static_cast<int>(local_.size()); }
  const LayerCatalog& catalog() const override { return *catalog_; }
  int ranks() const override;
  std::vector<int> ranksOf(const std::set<int>& tasks) const override;
  dist::Backend backend() const { return comms_->backend(); }
  // Wraps the RankSync of every train() (tests: a fault at a given step).
  using SyncWrapper = std::function<std::unique_ptr<train::RankSync>(train::RankSync&)>;
  void wrapSync(SyncWrapper wrap) { wrap_ = std::move(wrap); }

  std::vector<double> measure(const std::vector<int>& tasks) override;
  void setTargets(const std::vector<double>& targets) override { targets_ = targets; }
  void apply(const SharingPlan& plan, From from, const SharingPlan& previous,
             const std::vector<int>& rank = {}) override;
  train::TrialResult train(const SharingPlan& plan, const train::TrainOptions& options,
                           const std::set<int>& candidates) override;
  std::vector<double> validate(const SharingPlan& plan, const std::set<int>& tasks,
                               const train::TrainOptions& options) override;
  void accept() override;
  void stage(const std::set<int>& reverted) override;
  void restore(const io::Results& previous) override;
  void record(io::Results& results, const SharingPlan& accepted, const TaskScores& scores) override;
  void settle() override;
  void hold(bool trained = true) override;
  void adopt(const std::map<int, int>& roots, const dist::World& world) override;
  void stageGraft(const std::set<int>& from_result, const std::set<int>& with_delta) override;

 private:
  std::unique_ptr<train::WorldSync> synchronisation(const SharingPlan& plan);
  std::vector<train::TrialTask> trialTasks(const std::set<int>& tasks,
                                           const std::set<int>& candidates = {}) const;
  void prepareComms(const SharingPlan& plan);

  const config::Workload& workload_;
  const dist::Placement* placement_;  // the home placement, or the bound group's
  const dist::World* world_;          // the home World, or the bound group
  const dist::Placement& home_placement_;
  const dist::World& home_world_;
  const torch::Device device_;
  const std::string results_path_;
  std::vector<std::unique_ptr<train::TaskRuntime>> owned_;
  std::vector<train::TaskRuntime*> local_;  // the tasks this rank trains (bound: of the group)
  std::vector<models::Model*> models_;
  std::vector<train::TaskRuntime*> held_;  // every task this process holds
  std::unique_ptr<LayerCatalog> catalog_;
  std::unique_ptr<dist::CommunicatorCache> home_comms_, group_comms_;
  dist::CommunicatorCache* comms_;
  std::vector<dist::TaskCost> costs_;  // enableGroups
  dist::Backend group_backend_ = dist::Backend::kAuto;
  std::unique_ptr<dist::Placement> group_placement_;
  std::vector<double> targets_;
  Snapshot accepted_, staged_;  // per task; empty entries for tasks on other ranks
  // Parallel trials (executor.h): every task is local.
  using Streams = std::vector<std::pair<int64_t, int64_t>>;  // per task: batches, steps
  Streams streams() const;
  void seek(const Streams& streams);
  Snapshot committed_, result_, base_;  // base: the committed state the held result started from
  Streams committed_streams_, result_streams_;
  std::set<int> graft_from_;  // the last stageGraft's tasks from the result
  SyncWrapper wrap_;
  std::vector<int> input_sizes_;  // the lead's, read once from the datasets
};

}  // namespace gemel::merge
