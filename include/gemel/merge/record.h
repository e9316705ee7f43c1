#pragma once
// What the merge records: results.h5's tables filled from the accepted plan and weights, and
// the trial table's rows on stdout.
#include <cstdint>
#include <vector>

#include "gemel/config/workload.h"
#include "gemel/io/results.h"
#include "gemel/merge/catalog.h"
#include "gemel/merge/planner.h"
#include "gemel/merge/tying.h"

namespace gemel::merge {

struct TaskScores {
  std::vector<double> unmerged, target, current;  // per task, workload order
};

// Fills results' plan, savings, shared tensors (each stored once, from its first member) and
// per-task records (private tensors and buffers) from every task's accepted state.
// input_sizes: each task's input side in pixels (inputSizes()).
void fillRecords(io::Results& results, const SharingPlan& accepted, const LayerCatalog& catalog,
                 const Snapshot& states, const config::Workload& workload, const TaskScores& scores,
                 const std::vector<int>& input_sizes);

// The side of each task's input images as it trains and runs: a detector's image_size (it
// letterboxes to it), a classifier's dataset height (it takes the images as they are stored).
// Recorded as the task's image_size, which profile and eval build inputs from.
std::vector<int> inputSizes(const config::Workload& workload);

// One row of the trial table: trained tasks' score/target, savings so far, seconds.
void printTrialRow(const io::TrialRecord& trial, const std::vector<double>& targets,
                   const config::Workload& workload, int64_t total_bytes);

}  // namespace gemel::merge
