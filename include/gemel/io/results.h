#pragma once
// ResultsStore: the merge's results.h5 (docs/formats.md), written by rank 0 only, atomically
// (temporary file + rename) after every trial, so the file on disk is always a complete,
// readable result of the last finished trial.
//   /                            attrs: format="gemel-results", version, workload (YAML text),
//                                       workload_path, status (running | done)
//   /tasks/<task>                attrs: arch, source, dataset, num_classes, metric,
//                                       unmerged_score, target, final_score, mean, std
//   /tasks/<task>/params/<name>  tensors not shared, and buffers
//   /shared/<id>/<param>         each shared tensor once; /shared/<id> attrs: signature, members
//   /search/trials/<nnnn>        attrs: label, decision, models, met, trained, accuracy,
//                                       bytes_saved, steps, seconds; backoffs and lr after a
//                                       collapse or on a second try
//   /search/state                attrs: plan (JSON: [group, instance, [models]] per instance)
//   /search/state/streams        int64 [tasks, 2]: training batches taken and loss steps per task
//                                (in /tasks order), where `gemel merge --resume` picks up
//   /memory                      attrs: total, possible_savings, achieved_savings;
//                                dataset timeline [T, 2] (seconds, weight bytes)
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gemel/models/state_dict.h"

namespace gemel::io {

inline constexpr const char* kResultsFormat = "gemel-results";
// 2: a task's score is named by its metric (unmerged_score, final_score, metric; a trial's
// scores); version 1 files (unmerged_acc, final_acc, accuracy) are still read.
inline constexpr int64_t kResultsVersion = 2;

struct TaskRecord {
  std::string name, arch, source, dataset;
  int num_classes = 0;
  std::string metric = "top1";          // what the scores measure (the task objective's metric)
  std::string kind = "classification";  // classification | detection
  int image_size = 0;                   // the model's input size (detection letterboxes to it)
  std::string precision = "fp32";       // of its forward passes in training and validation
  bool channels_last = false;
  double unmerged_score = 0, target = 0, final_score = 0;
  std::vector<double> mean, std;
  models::StateDict params;  // private parameters and buffers
};

struct SharedRecord {
  std::string id;  // "g<group>_i<instance>"
  std::string signature;
  std::vector<std::string> members;  // "task:module"
  models::StateDict tensors;         // "weight", "bias"
};

struct TrialRecord {
  int number = 0;
  std::string label, decision;
  std::vector<std::string> models, met, trained;
  std::vector<double> scores;        // parallel to `trained`
  std::string ended;                 // why training ended before the budget ("" when it ran out)
  std::vector<std::string> dropped;  // tasks dropped as unable to reach their targets
  // The partial check, when there was one: the tasks validated and their scores, after the
  // recovery of the models that missed (if any).
  std::vector<std::string> checked;
  std::vector<double> check_scores;
  int64_t bytes_saved = 0;  // accepted savings after this trial
  int64_t steps = 0;
  double seconds = 0;
  int backoffs = 0;            // restarts at a smaller step after a collapse
  double lr = 0;               // the step the trial ended with, when not the workload's search.lr
  std::vector<int64_t> ranks;  // the ranks that held a task the trial trained (job ranks)
  // Parallel trials: search seconds when it started (< 0: not recorded; a sequential search's
  // trials follow one another).
  double started = -1;
};

struct Results {
  std::string workload_yaml, workload_path, status = "running";
  std::vector<TaskRecord> tasks;
  std::vector<SharedRecord> shared;
  std::vector<TrialRecord> trials;
  std::string plan_json = "[]";
  // Per task, in `tasks` order: training batches taken and loss steps computed so far.
  std::vector<std::pair<int64_t, int64_t>> streams;
  int64_t total_bytes = 0, possible_savings = 0, achieved_savings = 0;
  std::vector<std::pair<double, int64_t>> timeline;
  // Why the search ended ("" while it runs, and in files written before gemel recorded it),
  // and its seconds so far (resumes included).
  std::string ended;
  double search_seconds = 0;
  // Per rank of the job: the trial seconds it held a task of the trial (busy), and the trial
  // seconds it held none and waited (idle).
  std::vector<double> rank_busy_seconds, rank_idle_seconds;
};

void writeResults(const std::string& path, const Results& results);
// Reads everything; each shared tensor is read once (members refer to SharedRecord::tensors).
// Throws InputError naming the file and object when it is not a complete gemel results file.
// `tensors` false leaves out the weights (tasks' params, shared tensors): what a summary
// of many files needs, read in milliseconds.
Results readResults(const std::string& path, bool tensors = true);

// The full state_dict of one task: its private tensors plus the shared ones it uses, named as
// the model names them.
models::StateDict fullStateDict(const Results& results, const std::string& task);

// The parts of a results file a deployment loads separately (gemel profile): each task's private
// tensors, and each shared entry, which every task using it needs and loads once.
struct WeightBlock {
  std::string id;                    // "private:<task>" or the shared id ("g3_i0")
  std::vector<std::string> tasks;    // the tasks that use it, in /tasks order
  std::vector<std::string> objects;  // its HDF5 datasets ("/tasks/a/params/fc.weight")
  int64_t bytes = 0;                 // the tensors' bytes
};
std::vector<WeightBlock> weightBlocks(const Results& results);

// Reads datasets of a results file into fresh CPU tensors (InputError naming file and object).
std::vector<torch::Tensor> readResultTensors(const std::string& path,
                                             const std::vector<std::string>& objects);

}  // namespace gemel::io
