#include "gemel/merge/search.h"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>

#include "gemel/core/files.h"
#include "gemel/core/format.h"
#include "gemel/core/log.h"
#include "gemel/data/dataset.h"
#include "gemel/dist/cluster.h"
#include "gemel/dist/control_plane.h"
#include "gemel/dist/placement.h"
#include "gemel/merge/coordinator.h"
#include "gemel/merge/trial_runner.h"

namespace gemel::merge {

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
                     const MergeOptions& o) {
  const auto& cluster = dist::Cluster::get();
  // Before hours of training: results.h5 must be writable there (a read-only or full file
  // system fails now, with its cause).
  if (cluster.rank() == 0)
    requireWritableDirectory(o.out_dir, "give --out a writable directory with room for results.h5");
  // Placement: every rank computes the same one from the tasks' estimated costs.
  std::vector<dist::TaskCost> costs;
  for (const auto& t : w.tasks) {
    const data::DatasetReader header(t.dataset);
    const auto& info = header.info();
    costs.push_back(
        {t.name, dist::estimateTaskCost(t.arch, info.height, info.width, header.size("train"))});
  }
  const dist::Placement placement(costs, cluster.size());
  if (cluster.distributed())
    log::info("merge", "placement on {} ranks:\n{}", cluster.size(), placement.describe(costs));
  const dist::ControlPlane control(cluster);
  TrialRunner runner(w, placement, control, o.device, o.backend);
  log::info("merge", "training on {}", o.device.str());
  if (cluster.distributed()) {
    log::info("merge", "gradient synchronisation: {} backend", dist::toString(runner.backend()));
  }
  MergeCoordinator coordinator(w, workload_path, o, runner, control);
  return coordinator.run();
}

}  // namespace gemel::merge
