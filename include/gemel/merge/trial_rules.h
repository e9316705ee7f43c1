#pragma once
// The search's rules for a trial in training, in one place with the rest of the policy: at each
// validation, which tasks are dropped (they cannot reach their targets in the budget left),
// whether the trial ends (collapsed, hopeless, or done), and when to validate next. The trainer
// (train/joint_trainer.cpp) measures and obeys; the policy tests drive the same rules through
// the scripted executor (tests/support/fake_executor.h). No LibTorch here.
#include <limits>
#include <string>
#include <vector>

namespace gemel::merge {

// One task of the trial at a validation.
struct TaskAtValidation {
  std::string name;
  double score = 0, target = 0;
  double start_score = 0;     // at the trial's first validation
  double previous_score = 0;  // at the validation before this one
  bool candidate = false;     // one of the trial's own models (else a task it needs)
  bool dropped = false;       // dropped at an earlier validation
  // Below it, a dropped task has collapsed (-infinity: no floor).
  double collapse_floor = -std::numeric_limits<double>::infinity();
};

// Where the trial stands: validations so far (this one counted), epochs trained, epochs trained
// at the previous validation, and the epochs its budget has left.
struct ValidationMoment {
  int validations = 0;
  double epochs_done = 0, previous_epochs = 0, epochs_left = 0;
};

// The rules' settings, from the search (TrainOptions carries them to the trainer).
struct TrialRules {
  bool adaptive = true;            // drop tasks by projection, adapt the validation cadence
  bool early_stop = true;          // end once every remaining task meets its target
  double drop_after_epochs = 0.5;  // no task is dropped before this much training
  int min_candidates = 0;          // end when fewer candidates can still meet their targets
  int end_after_collapses = 0;     // end once this many dropped tasks have collapsed (0: never)
};

struct Verdict {
  std::vector<bool> dropped;       // every task, after this validation
  std::vector<std::string> notes;  // why each task dropped now was dropped (one line each)
  std::string ended;               // why the trial ends now ("" : it goes on)
  double interval = 1.0;           // epochs to the next validation (at least 0.25)
};

Verdict judgeValidation(const std::vector<TaskAtValidation>& tasks, const ValidationMoment& moment,
                        const TrialRules& rules);

}  // namespace gemel::merge
