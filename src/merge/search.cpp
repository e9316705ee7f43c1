#include "gemel/merge/search.h"

#include <torch/torch.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>

#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "gemel/core/format.h"
#include "gemel/core/log.h"
#include "gemel/data/dataset.h"
#include "gemel/dist/placement.h"
#include "gemel/dist/world.h"
#include "gemel/merge/coordinator.h"
#include "gemel/merge/trial_runner.h"

namespace gemel::merge {
namespace {

namespace fs = std::filesystem;

// Fault injection for the tests (GEMEL_FAULT or MergeOptions::fault, "RANK:STEP[:kill|:stop]"):
// a RankSync that passes every call on, and at that rank's STEP-th gradient reduction of this
// run (steps counted over its trials, in order) throws (or raises the signal). Parsed once,
// so a malformed value fails at the start.
class FaultAtStep final : public train::ForwardingSync {
 public:
  FaultAtStep(train::RankSync& inner, int64_t step, int signal, std::shared_ptr<int64_t> steps)
      : ForwardingSync(inner), step_(step), signal_(signal), steps_(std::move(steps)) {}
  void reduceGradients(const std::vector<torch::Tensor>& params) override {
    if (++*steps_ == step_) {
      if (signal_) std::raise(signal_);
      throw Error(format("fault injected at step {} (GEMEL_FAULT)", *steps_));
    }
    ForwardingSync::reduceGradients(params);
  }

 private:
  const int64_t step_;
  const int signal_;
  std::shared_ptr<int64_t> steps_;  // over every trial of the run
};

TrialRunner::SyncWrapper faultWrapper(std::string text, int rank) {
  if (text.empty() && std::getenv("GEMEL_FAULT")) text = std::getenv("GEMEL_FAULT");
  if (text.empty()) return {};
  const auto a = text.find(':');
  GEMEL_THROW_IF_NOT(a != std::string::npos, UsageError,
                     "GEMEL_FAULT '{}': expected RANK:STEP[:kill|:stop]", text);
  const int fault_rank = std::stoi(text.substr(0, a));
  const auto b = text.find(':', a + 1);
  const int64_t step =
      std::stoll(text.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1));
  const auto how = b == std::string::npos ? std::string() : text.substr(b + 1);
  GEMEL_THROW_IF_NOT(how.empty() || how == "kill" || how == "stop", UsageError,
                     "GEMEL_FAULT '{}': expected RANK:STEP[:kill|:stop]", text);
  if (fault_rank != rank) return {};
  const int signal = how == "kill" ? SIGKILL : how == "stop" ? SIGSTOP : 0;
  auto steps = std::make_shared<int64_t>(0);
  return [step, signal, steps](train::RankSync& inner) -> std::unique_ptr<train::RankSync> {
    return std::make_unique<FaultAtStep>(inner, step, signal, steps);
  };
}

// The results a resumed merge picks up from, checked against the workload.
io::Results readForResume(const std::string& path, const config::Workload& w,
                          const LayerCatalog& catalog, const std::string& workload_path) {
  GEMEL_THROW_IF_NOT(fs::exists(path), InputError,
                     "{}: nothing to resume from; run gemel merge without --resume to start", path);
  auto r = io::readResults(path);
  std::string had, has;
  for (const auto& t : r.tasks) had += (had.empty() ? "" : ", ") + t.name + " (" + t.arch + ")";
  for (std::size_t i = 0; i < w.tasks.size(); ++i) {
    has += (has.empty() ? "" : ", ") + w.tasks[i].name + " (" + catalog.models()[i].arch + ")";
  }
  GEMEL_THROW_IF_NOT(
      had == has, ConfigError,
      "{}: was written for the tasks [{}], but {} has [{}]; resume with the workload "
      "it was started with, or merge into a new --out directory",
      path, had, workload_path, has);
  return r;
}

}  // namespace

void printSummary(const io::Results& r, const std::vector<double>& scores) {
  const double pct = r.total_bytes > 0 ? 100.0 * r.achieved_savings / r.total_bytes : 0;
  std::printf("\nweight bytes: %s before, %s after merging: %s saved (%.1f%%; %.1f%% possible)\n",
              formatBytes(r.total_bytes).c_str(),
              formatBytes(r.total_bytes - r.achieved_savings).c_str(),
              formatBytes(r.achieved_savings).c_str(), pct,
              r.total_bytes > 0 ? 100.0 * r.possible_savings / r.total_bytes : 0.0);
  std::printf("  %-26s %10s %10s %10s  %s\n", "task", "unmerged", "target", "merged", "");
  for (std::size_t i = 0; i < r.tasks.size(); ++i) {
    const auto& t = r.tasks[i];
    const double a = i < scores.size() ? scores[i] : t.final_score;
    std::printf("  %-26s %10.4f %10.4f %10.4f  %s (%s)\n", t.name.c_str(), t.unmerged_score,
                t.target, a, a >= t.target ? "ok" : "BELOW TARGET", t.metric.c_str());
  }
}

io::Results runMerge(const config::Workload& w, const std::string& workload_path,
                     const MergeOptions& o, const dist::World& world) {
  // Before hours of training: results.h5 must be writable there (a read-only or full file
  // system fails now, with its cause).
  if (world.lead())
    requireWritableDirectory(o.out_dir, "give --out a writable directory with room for results.h5");
  // Placement: every rank computes the same one from the tasks' estimated costs.
  std::vector<dist::TaskCost> costs;
  MergeOptions options = o;
  options.val_sizes.clear();
  for (const auto& t : w.tasks) {
    const data::DatasetReader header(t.dataset);
    options.val_sizes.push_back(header.size("val"));
    const auto& info = header.info();
    costs.push_back(
        {t.name, dist::estimateTaskCost(t.arch, info.height, info.width, header.size("train"))});
  }
  // Parallel trials: every rank holds every task and trains its trial alone.
  const bool parallel = o.parallel_trials && world.size() > 1;
  const dist::Placement placement(costs, parallel ? 1 : world.size());
  const dist::SingleWorld solo;
  if (world.size() > 1 && !parallel)
    log::info("merge", "placement on {} ranks:\n{}", world.size(), placement.describe(costs));
  const auto results_path = (fs::path(o.out_dir) / "results.h5").string();
  auto fault = faultWrapper(o.fault, world.rank());
  TrialRunner runner(w, placement, parallel ? static_cast<const dist::World&>(solo) : world,
                     o.device, parallel ? dist::Backend::kSingle : o.backend, results_path);
  runner.wrapSync(std::move(fault));
  if (parallel) runner.enableGroups(costs, o.backend);
  log::info("merge", "training on {}", o.device.str());
  if (world.size() > 1 && !parallel) {
    log::info("merge", "gradient synchronisation: {} backend", dist::toString(runner.backend()));
  }
  // --resume: every rank reads the last results (the lead replaces the file only after this).
  std::optional<io::Results> previous;
  if (o.resume) previous = readForResume(results_path, w, runner.catalog(), workload_path);
  MergeCoordinator coordinator(w, workload_path, options, runner, world);
  return coordinator.run(previous);
}

}  // namespace gemel::merge
