#pragma once
// The summary of a sweep (slurm/sweep.sbatch's OUT_ROOT: one directory per workload, each with
// results.h5 and, once `gemel eval` measured every task, eval.json), or of a list of
// results.h5 files: one row per workload, as a table, CSV and an HTML page with a plot.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace gemel::io {

enum class SweepState {
  kFinished,  // status done: the search ended on its own (budget, plan, --max-trials)
  kCutShort,  // status running: killed, out of time or crashed before its end (--resume)
  kFailed,    // a results.h5 that cannot be read
  kMissing,   // no results.h5 (the merge never wrote one), or a listed config without a directory
};
const char* sweepStateName(SweepState state);

struct SweepRow {
  std::string name;  // the member's directory name (sweep.sbatch: the config's file stem)
  std::string path;  // its results.h5
  SweepState state = SweepState::kMissing;
  std::string detail;  // what is wrong, for a member not finished; the eval.json source
  int tasks = 0;
  int64_t total_bytes = 0, possible = 0, confirmed = 0;
  // Every task at its target: from eval.json (what `gemel eval` measured) when it is there,
  // else from the scores results.h5 recorded; "" when unknown.
  std::string at_target;                 // "yes", "no", or ""
  bool at_target_measured = false;       // true: from eval.json
  std::map<std::string, int> decisions;  // accepted, partial, rejected, failed
  int trials = 0;
  double search_seconds = 0;
  std::string ended;  // why the search ended, as results.h5 records it
  double percentOfPossible() const {
    return possible > 0 ? 100.0 * static_cast<double>(confirmed) / static_cast<double>(possible)
                        : 0.0;
  }
  bool complete() const { return state == SweepState::kFinished && at_target == "yes"; }
};

// Rows for `inputs`: each a sweep root (every subdirectory is a member; a directory holding
// results.h5 is one itself) or a results.h5 file. `list` (optional, sweep.sbatch's LIST.txt):
// every config it names is a member, missing when it has no directory. Sorted by name.
std::vector<SweepRow> collectSweep(const std::vector<std::string>& inputs,
                                   const std::string& list = "");

std::string sweepTable(const std::vector<SweepRow>& rows);
std::string sweepCsv(const std::vector<SweepRow>& rows);
// A self-contained page (no script, no external file): the counts by state, a bar plot of
// possible and confirmed savings per workload, and the table.
std::string sweepHtml(const std::vector<SweepRow>& rows, const std::string& title);

}  // namespace gemel::io
