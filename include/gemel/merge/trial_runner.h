#pragma once
// TrialRunner: this rank's side of the merge. It holds the tasks placed on this rank (model and
// data), the catalog every rank agrees on, and the communicators; and it carries out what the
// coordinator asks, the same calls in the same order on every rank:
//   apply     tie a plan's layers from a snapshot (tying.h) and make every shared tensor hold
//             its source member's values on every rank that holds it;
//   train     retrain a plan's tasks jointly, gradients of tensors held on several ranks
//             all-reduced over exactly those ranks (GradSync);
//   validate  score tasks, counts summed over ranks and replicas.
#include <functional>
#include <memory>
#include <set>
#include <vector>

#include <torch/types.h>

#include "gemel/config/workload.h"
#include "gemel/dist/communicator.h"
#include "gemel/dist/placement.h"
#include "gemel/merge/catalog.h"
#include "gemel/merge/planner.h"
#include "gemel/merge/tying.h"
#include "gemel/train/joint_trainer.h"
#include "gemel/train/task.h"

namespace gemel::dist {
class ControlPlane;
}

namespace gemel::merge {

class TrialRunner {
 public:
  // Builds this rank's tasks and, with the other ranks, the catalog (each task's owner
  // describes its model).
  TrialRunner(const config::Workload& workload, const dist::Placement& placement,
              const dist::ControlPlane& control, const torch::Device& device,
              dist::Backend backend);
  ~TrialRunner();
  TrialRunner(const TrialRunner&) = delete;
  TrialRunner& operator=(const TrialRunner&) = delete;

  int tasks() const { return static_cast<int>(local_.size()); }
  const LayerCatalog& catalog() const { return *catalog_; }
  const dist::Placement& placement() const { return placement_; }
  dist::Backend backend() const { return comms_.backend(); }
  // Per task (workload order): its model and runtime here, or null when on another rank.
  const std::vector<models::Model*>& models() const { return models_; }
  train::TaskRuntime* local(int task) const { return local_[task]; }
  void setTargets(std::vector<double> targets) { targets_ = std::move(targets); }

  // Scores of `tasks` as they are, untied (the unmerged models).
  std::vector<double> measure(const std::vector<int>& tasks);
  void apply(const SharingPlan& plan, const Snapshot& snapshot, const SharingPlan& previous,
             const std::vector<int>& rank = {});
  // `candidates`: the trial's own models (train::TrialTask::candidate).
  train::TrialResult train(const SharingPlan& plan, const train::TrainOptions& options,
                           const std::set<int>& candidates,
                           std::function<void(int64_t)> on_step = {});
  // Scores of the plan's tasks (or of `tasks`), in ascending task order.
  std::vector<double> validate(const SharingPlan& plan, const std::set<int>& tasks,
                               const train::TrainOptions& options = {});

 private:
  struct Sync;
  Sync synchronisation(const SharingPlan& plan);
  std::vector<train::TrialTask> trialTasks(const std::set<int>& tasks,
                                           const std::set<int>& candidates = {}) const;
  void prepareComms(const SharingPlan& plan);
  std::vector<int> ranksOf(const std::set<int>& tasks) const;

  const config::Workload& workload_;
  const dist::Placement& placement_;
  const dist::ControlPlane& control_;
  std::vector<std::unique_ptr<train::TaskRuntime>> owned_;
  std::vector<train::TaskRuntime*> local_;
  std::vector<models::Model*> models_;
  std::unique_ptr<LayerCatalog> catalog_;
  dist::CommunicatorCache comms_;
  std::vector<double> targets_;
};

}  // namespace gemel::merge
