#include "gemel/merge/trial_rules.h"

#include <algorithm>
#include <cmath>

#include "gemel/core/format.h"

namespace gemel::merge {
namespace {

double round4(double x) { return std::round(x * 1e4) / 1e4; }

}  // namespace

Verdict judgeValidation(const std::vector<TaskAtValidation>& tasks, const ValidationMoment& m,
                        const TrialRules& rules) {
  Verdict v;
  for (const auto& t : tasks) v.dropped.push_back(t.dropped);
  double interval = 1.0;
  for (std::size_t i = 0; i < tasks.size() && rules.adaptive; ++i) {
    const auto& t = tasks[i];
    if (t.dropped || t.score >= t.target) continue;
    const double gap = t.target - t.score;
    // The best lift per epoch seen: over the whole run, or since the last validation.
    double lift = (t.score - t.start_score) / std::max(m.epochs_done, 1e-9);
    if (m.epochs_done > m.previous_epochs) {
      lift = std::max(lift, (t.score - t.previous_score) / (m.epochs_done - m.previous_epochs));
    }
    // (Scores are fractions: no projection goes past 1.)
    const double projected = std::min(1.0, t.score + std::max(lift, 0.0) * m.epochs_left);
    // Not on the first validation of the run: a trial's new sharing often costs accuracy at
    // first, and the trend after that shock is what the projection must see.
    const bool trend = m.validations >= 3;
    if (trend && m.epochs_done >= rules.drop_after_epochs && projected < t.target) {
      v.dropped[i] = true;
      v.notes.push_back(
          format("dropping task {}: {} against a target of {}; at its best lift of {} per epoch it "
                 "would reach {} in the {} epochs left",
                 t.name, round4(t.score), round4(t.target), round4(lift), round4(projected),
                 round4(m.epochs_left)));
      continue;
    }
    // A task not improving is looked at again soon: it may be dropped, or be recovering.
    interval = std::min(interval, lift > 0 ? gap / lift : 0.25);
  }
  v.interval = std::max(interval, 0.25);
  // Collapsed: end_after_collapses dropped tasks below their collapse floors.
  if (rules.end_after_collapses > 0) {
    std::string fallen;
    int count = 0;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      if (!v.dropped[i] || tasks[i].score >= tasks[i].collapse_floor) continue;
      ++count;
      fallen += format("{}{} at {} (floor {})", fallen.empty() ? "" : ", ", tasks[i].name,
                       round4(tasks[i].score), round4(tasks[i].collapse_floor));
    }
    if (count >= rules.end_after_collapses) {
      v.ended = format("{} collapsed: {}", count == 1 ? "a task" : "tasks", fallen);
    }
  }
  // Whether the trial can still succeed, or already has.
  int candidates = 0;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    if (v.ended.empty() && v.dropped[i] && !tasks[i].candidate) {
      v.ended = format("task {} cannot reach its target, and the trial needs it", tasks[i].name);
    }
    candidates += !v.dropped[i] && tasks[i].candidate;
  }
  if (v.ended.empty() && candidates < rules.min_candidates) {
    v.ended = format("{} of the trial's models can still reach their targets, fewer than {}",
                     candidates, rules.min_candidates);
  }
  if (v.ended.empty() && std::all_of(v.dropped.begin(), v.dropped.end(), [](bool d) { return d; }))
    v.ended = "no task can reach its target";
  if (v.ended.empty() && rules.early_stop) {
    bool met = true;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      if (!v.dropped[i] && tasks[i].score < tasks[i].target) met = false;
    }
    if (met) v.ended = "every remaining task meets its target";
  }
  return v;
}

}  // namespace gemel::merge
