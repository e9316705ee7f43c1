#pragma once
// MergeSearch: the whole merge, on one process or on every rank of an MPI job (the same code:
// one process is a world of one). Tasks are placed on ranks (dist/placement.h); rank 0 runs
// the Planner, broadcasts each trial and each decision, and alone writes results.h5. Builds each
// task's model and data, measures the unmerged accuracies it is not given, asks the Planner for
// trials, ties each trial's layers, retrains jointly, decides, and writes results.h5 after every
// trial. The accepted state always has every task at or above its target: a trial is accepted
// (wholly, or for the models that met their targets) only when the resulting models are validated
// at target.
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "gemel/config/workload.h"
#include "gemel/dist/communicator.h"
#include "gemel/dist/world.h"
#include "gemel/io/results.h"
#include "gemel/train/joint_trainer.h"

namespace gemel::merge {

struct MergeOptions {
  std::string out_dir;
  torch::Device device = torch::kCPU;
  int64_t max_steps_per_trial = 0;  // 0: the workload's epoch/second budget only
  // > 0: every trial trains exactly this many steps (no early stop, no dropping, fixed loss
  // weights), then is decided as usual: for checking that N ranks compute what 1 rank does.
  int64_t fixed_steps = 0;
  int max_trials = 0;       // 0: until the planner is done
  double time_budget = 0;   // seconds for the whole search (0: none; SearchConfig::time_budget)
  bool print_table = true;  // the trial table on stdout (rank 0)
  // Per task: its val split's size, for the log's statement of what a target means on it
  // (empty: not stated).
  std::vector<int64_t> val_sizes;
  // Pick up from out_dir/results.h5: its weights, unmerged accuracies and targets, the
  // planner's state (replayed from its trials) and each task's position in its data stream,
  // so the run goes on as if it had not stopped. Trial numbers (and max_trials) count on.
  bool resume = false;
  dist::Backend backend = dist::Backend::kAuto;
  // Several trials at once, each on one rank that holds every task (docs/distributed.md);
  // on one rank the search is the sequential one.
  bool parallel_trials = false;
  // With parallel_trials: the most ranks one trial takes (0: one per task it trains, up to
  // the job's ranks); the ranks it leaves run the trials the search may try next.
  int trial_ranks = 0;
  // Fault injection for tests: "RANK:STEP" throws on that rank at its STEP-th training step of
  // the run (counted over the trials); "RANK:STEP:kill" kills the process instead, ":stop"
  // stops it. Also read from GEMEL_FAULT.
  std::string fault;
};

// The merge as one rank of `world` (every rank calls it); the lead writes results.h5.
io::Results runMerge(const config::Workload& workload, const std::string& workload_path,
                     const MergeOptions& options, const dist::World& world);

// Prints the final summary table (bytes before/after, % saved, each task's score against its
// target, naming the metric).
void printSummary(const io::Results& results, const std::vector<double>& scores);

}  // namespace gemel::merge
