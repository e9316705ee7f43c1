#pragma once
// TrialExecutor: what the merge search (MergeCoordinator) asks of the training side, on every
// rank, in the same order. The coordinator holds the policy (which trial, accept, partial,
// recovery, reject, resume); an executor holds the models, their data and two weight states:
//   accepted  the weights of the last accepted plan, per task (accept() takes them from the
//             current weights);
//   staged    a candidate state for a partial check: the current weights, with the tasks that
//             missed their targets put back at their accepted weights (stage()).
// TrialRunner is the real executor (models, data, GradSync); the policy tests script a fake.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gemel/dist/world.h"
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

  // Parallel trials (docs/distributed.md): every rank holds every task and runs its own
  // trial, so the executor holds two more states besides accepted and staged:
  //   committed  what every rank agrees on: the weights and data-stream positions of the
  //              trials committed so far (settle() takes it from the accepted state);
  //   result     this rank's last trial, as it left the accepted state (hold()).
  virtual void settle() = 0;
  // After this rank's trial: result := accepted (and the streams as the trial left them);
  // accepted := committed, the streams back at the committed positions. `trained` false
  // (after a combination was validated, see stageGraft): the result keeps the streams of the
  // tasks it took from the trial, the others' are the committed ones.
  virtual void hold(bool trained = true) = 0;
  // A collective over `world`: the result of each task on its rank (roots: task -> rank)
  // becomes the committed and accepted state of the task on every rank, weights and
  // data-stream positions.
  virtual void adopt(const std::map<int, int>& roots, const dist::World& world) = 0;
  // Makes this rank one of `group`, which trains `tasks` placed over its ranks (at most one
  // rank per task); unbind() makes it this rank alone again, holding every task. holder(t):
  // the group rank that trains task t.
  virtual void bind(const dist::World& group, const std::set<int>& tasks) = 0;
  virtual void unbind() = 0;
  virtual int holder(int task) const = 0;
  // The combination of this rank's result with what was committed since its trial started
  // (from the state `base`): staged := accepted (the committed state), with the tasks
  // `from_result` at their result, and the tasks `with_delta` (trained by both) at committed +
  // (result - base): both trials' changes, as task arithmetic adds fine-tunings.
  virtual void stageGraft(const std::set<int>& from_result, const std::set<int>& with_delta) = 0;
};

}  // namespace gemel::merge
