#pragma once
// MergeSearch: the whole merge on one process. Builds each task's model and data, measures the
// unmerged accuracies it is not given, asks the Planner for trials, ties each trial's layers,
// retrains jointly, decides, and writes results.h5 after every trial. The accepted state always
// has every task at or above its target: a trial is accepted (wholly, or for the models that
// met their targets) only when the resulting models are validated at target.
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "gemel/config/workload.h"
#include "gemel/io/results.h"
#include "gemel/train/joint_trainer.h"

namespace gemel::merge {

struct MergeOptions {
  std::string out_dir;
  torch::Device device = torch::kCPU;
  int64_t max_steps_per_trial = 0;  // 0: the workload's epoch/second budget only
  int max_trials = 0;               // 0: until the planner is done
  bool print_table = true;          // the trial table on stdout
};

io::Results runMerge(const config::Workload& workload, const std::string& workload_path,
                     const MergeOptions& options);

// Prints the final summary table (bytes before/after, % saved, accuracy vs target per task).
void printSummary(const io::Results& results, const std::vector<double>& accuracy);

}  // namespace gemel::merge
