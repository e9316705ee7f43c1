#include "gemel/core/threads.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "gemel/core/error.h"
#include "gemel/core/format.h"

namespace gemel {
namespace {

namespace fs = std::filesystem;

std::string readAll(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The limit of one cgroup directory, in CPUs: v2 "cpu.max" ("max 100000" or "150000 100000"),
// else v1 cpu.cfs_quota_us (-1: none) over cpu.cfs_period_us.
std::optional<double> limitAt(const fs::path& dir) {
  std::istringstream v2(readAll(dir / "cpu.max"));
  std::string quota;
  double period = 0;
  if (v2 >> quota >> period) {
    if (quota == "max" || period <= 0) return std::nullopt;
    return std::stod(quota) / period;
  }
  std::istringstream q(readAll(dir / "cpu.cfs_quota_us")), p(readAll(dir / "cpu.cfs_period_us"));
  double qv = 0;
  if (q >> qv && p >> period && qv > 0 && period > 0) return qv / period;
  return std::nullopt;
}

// The smallest limit from `dir` up to `root` (a container often sees its own limit at the
// mount's root while /proc/self/cgroup names a path that does not exist inside it).
std::optional<double> smallestUpTo(const fs::path& root, fs::path dir) {
  std::optional<double> best;
  auto take = [&](const fs::path& d) {
    const auto l = limitAt(d);
    if (l && (!best || *l < *best)) best = l;
  };
  for (; dir.string().size() > root.string().size(); dir = dir.parent_path()) take(dir);
  take(root);
  return best;
}

}  // namespace

std::optional<double> cgroupCpuQuota(const std::string& sys_root, const std::string& proc_cgroup) {
  std::optional<double> best;
  auto keep = [&](const std::optional<double>& l) {
    if (l && (!best || *l < *best)) best = l;
  };
  std::istringstream lines(proc_cgroup);
  std::string line;
  while (std::getline(lines, line)) {
    // "hierarchy-id:controllers:path"; v2 is "0::path".
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const auto controllers = line.substr(a + 1, b - a - 1);
    const auto path = fs::path(line.substr(b + 1)).relative_path();
    if (controllers.empty()) {
      for (const auto* mount : {"", "unified"}) {
        const auto root = fs::path(sys_root) / mount;
        keep(smallestUpTo(root, root / path));
      }
      continue;
    }
    std::vector<std::string> names;
    std::stringstream cs(controllers);
    std::string c;
    while (std::getline(cs, c, ',')) names.push_back(c);
    if (std::find(names.begin(), names.end(), "cpu") == names.end()) continue;
    // v1 mounts the cpu controller as "cpu", "cpu,cpuacct" or "cpuacct,cpu".
    for (const auto* mount : {"cpu", "cpu,cpuacct", "cpuacct,cpu"}) {
      const auto root = fs::path(sys_root) / mount;
      if (fs::is_directory(root)) keep(smallestUpTo(root, root / path));
    }
  }
  return best;
}

CpuBudget cpuBudget() {
  CpuBudget b;
  cpu_set_t set;
  CPU_ZERO(&set);
  b.affinity = sched_getaffinity(0, sizeof(set), &set) == 0
                   ? CPU_COUNT(&set)
                   : static_cast<int>(std::thread::hardware_concurrency());
  b.affinity = std::max(1, b.affinity);
  b.quota = cgroupCpuQuota("/sys/fs/cgroup", readAll("/proc/self/cgroup"));
  b.usable = b.affinity;
  if (b.quota) b.usable = std::min(b.usable, static_cast<int>(std::floor(*b.quota)));
  b.usable = std::max(1, b.usable);
  return b;
}

ThreadChoice chooseThreads(int requested, const char* omp_env, const CpuBudget& budget,
                           int ranks_on_node) {
  if (requested > 0) return {requested, "--threads"};
  GEMEL_THROW_IF_NOT(requested == 0, UsageError, "--threads {}: expected a positive count",
                     requested);
  if (omp_env && *omp_env) {
    const int n = parseInt(omp_env).value_or(0);
    GEMEL_THROW_IF_NOT(n >= 1, UsageError,
                       "OMP_NUM_THREADS='{}': expected a positive whole number, or unset it to "
                       "use every CPU this process may run on",
                       omp_env);
    return {n, "OMP_NUM_THREADS"};
  }
  const int ranks = std::max(1, ranks_on_node);
  const int threads = std::max(1, budget.usable / ranks);
  std::string why = format("{} CPUs in the affinity mask", budget.affinity);
  if (budget.quota) why += format(", cgroup quota {} CPUs", formatFixed(*budget.quota, 2));
  if (ranks > 1) why += format(", shared by {} ranks on this node", ranks);
  return {threads, why};
}

}  // namespace gemel
