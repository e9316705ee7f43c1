#pragma once
// What `gemel profile` measures on a device for a merged workload, and the profile file (P.h5):
//   /                    attrs: format="gemel-profile", version, device, results (path),
//                               tasks (order), memory_measure (rss | cuda-allocator),
//                               repeats, load_repeats, saved_bytes (the results' savings),
//                               merged_set_bytes, unmerged_set_bytes (measured)
//   /tasks/<task>        attrs: arch, image_size, precision, weight_bytes, resident_bytes,
//                               load_seconds, load_seconds_p95;
//                        datasets: batch_sizes int64 [B], latency_median, latency_p95
//                               float64 [B] (seconds), run_bytes int64 [B]
//   /blocks/<n>          attrs: id ("private:<task>" or the shared id), tasks, weight_bytes,
//                               resident_bytes, load_seconds
//   /pairs/load_seconds  float64 [T, T]: loading task j (column) while task i (row) is resident;
//                               the diagonal: task j alone
//   /pairs/bytes         int64 [T, T]: the bytes that load adds
// Torch-free: the measuring is in profileResults (gemel_core); reading, writing and turning a
// profile into the scheduler's models are here.
#include <cstdint>
#include <string>
#include <vector>

#include "gemel/edge/scheduler.h"

namespace gemel::edge {

inline constexpr const char* kProfileFormat = "gemel-profile";
inline constexpr int64_t kProfileVersion = 1;

struct TaskProfile {
  std::string name, arch, precision = "fp32";
  int image_size = 0;
  int64_t weight_bytes = 0;    // its tensors' bytes, shared ones included
  int64_t resident_bytes = 0;  // measured: what loading it alone adds
  double load_seconds = 0, load_seconds_p95 = 0;
  std::vector<int> batch_sizes;
  std::vector<double> latency_median, latency_p95;
  std::vector<int64_t> run_bytes;  // measured: peak memory of a batch beyond the weights
};

struct BlockProfile {
  std::string id;
  std::vector<std::string> tasks;
  int64_t weight_bytes = 0, resident_bytes = 0;
  double load_seconds = 0;
};

struct Profile {
  std::string device, results_path, memory_measure;
  int repeats = 0, load_repeats = 0;
  int64_t saved_bytes = 0;
  int64_t merged_set_bytes = 0, unmerged_set_bytes = 0;
  std::vector<TaskProfile> tasks;
  std::vector<BlockProfile> blocks;
  std::vector<std::vector<double>> pair_load_seconds;  // [i][j]
  std::vector<std::vector<int64_t>> pair_bytes;
};

struct ProfileOptions {
  std::string device = "cpu";  // cpu | cuda | cuda:N
  std::vector<int> batch_sizes{1, 2, 4, 8};
  int repeats = 20;      // timed forward passes per batch size (after warm-up)
  int load_repeats = 5;  // timed loads per block, task and pair
};

// Measures every task of a results file on the device (gemel_core; needs LibTorch).
Profile profileResults(const std::string& results_path, const ProfileOptions& options);

void writeProfile(const std::string& path, const Profile& profile);
// InputError naming the file and object when it is not a complete gemel profile.
Profile readProfile(const std::string& path);

// The scheduler's models. Merged: each task's private block plus the shared blocks it uses,
// named alike across tasks so they load once. Unmerged: each task one block, with what loading
// it alone measured.
std::vector<ModelProfile> modelProfiles(const Profile& profile, bool merged);

// A sweep over memory budgets and modes (merged, unmerged, no-swap-cost: unmerged with free
// loads), and its file (S.h5):
//   /               attrs: format="gemel-simulation", version, results, profile, modes,
//                          streams, fps, sla_seconds, frames, batch (0: auto)
//   /memory_bytes   int64 [M]
//   /<mode>         attrs: all_resident_bytes (every model's weights resident at once, plus
//                          the largest smallest-batch run memory: the budget where nothing swaps)
//   /<mode>/processed, skipped, within_sla, loads  int64 [M]; load_seconds float64 [M];
//   /<mode>/stream_processed, stream_skipped, stream_within_sla  int64 [M, S]
struct Sweep {
  std::string results_path, profile_path;
  std::vector<std::string> modes, streams;
  std::vector<int64_t> memory_bytes;
  SimulationOptions options;                        // memory_bytes and load_costs vary per run
  std::vector<int64_t> all_resident_bytes;          // per mode
  std::vector<std::vector<SimulationResult>> runs;  // [mode][budget]
};

inline constexpr const char* kSimulationFormat = "gemel-simulation";

// Runs every mode at every budget. UsageError (before running anything) when a budget is below
// what the largest model needs alone.
Sweep runSweep(const Profile& profile, const std::vector<std::string>& modes,
               const std::vector<int64_t>& memory_bytes, const SimulationOptions& options);
void writeSweep(const std::string& path, const Sweep& sweep);

// "4GiB" "512MiB" "1.5GB" "1000000" -> bytes; "100ms" "0.1s" "0.1" -> seconds. UsageError
// naming `what` (the option) on anything else.
int64_t parseBytes(const std::string& text, const std::string& what);
double parseSeconds(const std::string& text, const std::string& what);

}  // namespace gemel::edge
