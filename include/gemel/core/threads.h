#pragma once
// How many CPU threads this process should compute with: the CPUs it may run on (its affinity
// mask and its cgroup's CPU quota), shared between the ranks of an MPI job on this node.
// OMP_NUM_THREADS, or an explicit request (--threads), overrides it. Torch-free: the caller
// hands the count to LibTorch.
#include <optional>
#include <string>

namespace gemel {

struct CpuBudget {
  int affinity = 1;             // CPUs in this process's affinity mask
  std::optional<double> quota;  // the cgroup's CPU quota in CPUs (quota / period), if limited
  int usable = 1;               // min(affinity, floor(quota)), at least 1
};

// The cgroup CPU quota, from `proc_cgroup` (the text of /proc/self/cgroup) and the cgroup
// file systems under `sys_root` (/sys/fs/cgroup): cgroup v2's cpu.max or v1's
// cpu.cfs_quota_us / cpu.cfs_period_us, the smallest along the process's cgroup path up to the
// root. nullopt when no level is limited.
std::optional<double> cgroupCpuQuota(const std::string& sys_root, const std::string& proc_cgroup);

// This process's budget, read from the running system.
CpuBudget cpuBudget();

struct ThreadChoice {
  int threads = 1;
  std::string why;  // for the log and `gemel version`: where the count came from
};

// requested > 0 (--threads) wins, then OMP_NUM_THREADS (`omp_env`, as the environment holds
// it, or null), then budget.usable / ranks_on_node. Throws UsageError on a malformed value.
ThreadChoice chooseThreads(int requested, const char* omp_env, const CpuBudget& budget,
                           int ranks_on_node);

}  // namespace gemel
