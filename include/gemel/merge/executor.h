#pragma once
// TrialExecutor: what the merge search (MergeCoordinator) asks of the training side, on every
// rank, in the same order. The coordinator holds the policy (which trial, accept, partial,
// recovery, reject, resume); an executor holds the models, their data and two weight states:
//   accepted  the weights of the last accepted plan, per task (accept() takes them from the
//             current weights);
//   staged    a candidate state for a partial check: the current weights, with the tasks that
//             missed their targets put back at their accepted weights (stage()).
// TrialRunner is the real executor (models, data, GradSync); the policy tests script a fake.
#include <set>
#include <string>
#include <vector>

#include "gemel/io/results.h"
#include "gemel/merge/catalog.h"
#include "gemel/merge/planner.h"
#include "gemel/merge/record.h"
#include "gemel/train/joint_trainer.h"

namespace gemel::merge {

class TrialExecutor {
 public:
  enum class From { kAccepted, kStaged };

  virtual ~TrialExecutor() = default;
  virtual int tasks() const = 0;
  virtual const LayerCatalog& catalog() const = 0;
  // The ranks of the job, and those that hold one of `tasks` (sorted): a trial's busy ranks.
  virtual int ranks() const = 0;
  virtual std::vector<int> ranksOf(const std::set<int>& tasks) const = 0;

  // Scores of `tasks` as they are, untied (the unmerged models).
  virtual std::vector<double> measure(const std::vector<int>& tasks) = 0;
  virtual void setTargets(const std::vector<double>& targets) = 0;

  // Resets every task to the accepted (or staged) weights and ties `plan`. A shared tensor
  // comes from a member that shared it in `previous`, else from the member of lowest
  // rank[m] (tying.h: materialize).
  virtual void apply(const SharingPlan& plan, From from, const SharingPlan& previous,
                     const std::vector<int>& rank = {}) = 0;
  // Retrains the plan's tasks jointly; `candidates` are the trial's own models.
  virtual train::TrialResult train(const SharingPlan& plan, const train::TrainOptions& options,
                                   const std::set<int>& candidates) = 0;
  // Scores of the tasks, in ascending task order, as the current weights are.
  virtual std::vector<double> validate(const SharingPlan& plan, const std::set<int>& tasks,
                                       const train::TrainOptions& options) = 0;

  virtual void accept() = 0;
  virtual void stage(const std::set<int>& reverted) = 0;

  // --resume: the tasks take the weights and data-stream positions `previous` recorded.
  virtual void restore(const io::Results& previous) = 0;
  // Records the accepted state: the weights, data-stream positions and `scores` go into
  // `results` (on the lead), which is then written out. A collective.
  virtual void record(io::Results& results, const SharingPlan& accepted,
                      const TaskScores& scores) = 0;
};

}  // namespace gemel::merge
