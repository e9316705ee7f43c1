// gemel profile's measurements: load times and resident bytes of a results file's weights on a
// device, and each model's run memory and latency per batch size.
//
// Memory is measured, not computed from shapes. On the CPU: the process's resident set
// (/proc/self/statm), after glibc has handed freed pages back (malloc_trim; gemel's host
// cache is off while profiling: its size classes would count as a model's), so that what a load
// allocates is faulted in and counted; a run's peak is the high-water mark (VmHWM), reset
// before the run through /proc/self/clear_refs. On CUDA: LibTorch's caching allocator's
// allocated bytes, current and peak.
#include <malloc.h>
#include <torch/torch.h>
#include <unistd.h>
#include "gemel/features.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>

#include "gemel/core/error.h"
#include "gemel/core/format.h"
#include "gemel/core/host_cache.h"
#include "gemel/core/log.h"
#include "gemel/edge/profile.h"
#include "gemel/io/results.h"
#include "gemel/models/archs.h"
#include "gemel/models/zoo.h"
#include "gemel/train/precision.h"

#ifdef GEMEL_HAVE_CUDA_RUNTIME
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace gemel::edge {
namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double quantile(std::vector<double> v, double q) {
  GEMEL_ASSERT(!v.empty(), "quantile of nothing");
  std::sort(v.begin(), v.end());
  const double at = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(at);
  const auto hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (at - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

int64_t medianBytes(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

class Meter {
 public:
  explicit Meter(const torch::Device& device) : device_(device) {
    if (!device_.is_cuda()) {
      peak_resettable_ = std::ofstream("/proc/self/clear_refs").good();
      if (!peak_resettable_)
        log::warn("profile",
                  "/proc/self/clear_refs is not writable here: run memory is the "
                  "resident set after each batch, not its peak");
    }
  }
  std::string name() const { return device_.is_cuda() ? "cuda-allocator" : "rss"; }

  // Bytes in use now, after freed memory is settled.
  int64_t current() {
    if (device_.is_cuda()) {
#ifdef GEMEL_HAVE_CUDA_RUNTIME
      torch::cuda::synchronize(device_.index());
      return c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index())
          .allocated_bytes[0]
          .current;
#endif
    }
    malloc_trim(0);
    std::ifstream statm("/proc/self/statm");
    int64_t size = 0, resident = 0;
    statm >> size >> resident;
    return resident * sysconf(_SC_PAGESIZE);
  }

  void resetPeak() {
    if (device_.is_cuda()) {
#ifdef GEMEL_HAVE_CUDA_RUNTIME
      c10::cuda::CUDACachingAllocator::resetPeakStats(device_.index());
#endif
      return;
    }
    if (peak_resettable_) std::ofstream("/proc/self/clear_refs") << "5";
  }

  int64_t peak() {
    if (device_.is_cuda()) {
#ifdef GEMEL_HAVE_CUDA_RUNTIME
      torch::cuda::synchronize(device_.index());
      return c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index())
          .allocated_bytes[0]
          .peak;
#endif
    }
    if (!peak_resettable_) return current();
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("VmHWM:", 0) == 0) {
        std::istringstream in(line.substr(6));
        int64_t kib = 0;
        in >> kib;
        return kib * 1024;
      }
    }
    return current();
  }

 private:
  torch::Device device_;
  bool peak_resettable_ = false;
};

torch::Device parseDevice(const std::string& text) {
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(text);
  } catch (const c10::Error&) {
    throw UsageError(format("--device '{}': expected cpu, cuda or cuda:N", text));
  }
  GEMEL_THROW_IF_NOT(device.is_cpu() || device.is_cuda(), UsageError,
                     "--device '{}': expected cpu, cuda or cuda:N", text);
  if (device.is_cuda()) {
    GEMEL_THROW_IF_NOT(torch::cuda::is_available(), UsageError,
                       "--device {}: no CUDA device is available here; use --device cpu", text);
    if (!device.has_index()) device = torch::Device(torch::kCUDA, 0);
    GEMEL_THROW_IF_NOT(device.index() < static_cast<int>(torch::cuda::device_count()), UsageError,
                       "--device {}: this machine has {} CUDA devices", text,
                       torch::cuda::device_count());
  }
  return device;
}

// Loading = reading the tensors from the results file and placing them on the device.
class Loader {
 public:
  Loader(std::string path, const torch::Device& device) : path_(std::move(path)), device_(device) {}

  std::vector<torch::Tensor> load(const std::vector<std::string>& objects) const {
    auto tensors = io::readResultTensors(path_, objects);
    if (device_.is_cuda()) {
      for (auto& t : tensors) t = t.to(device_);
      torch::cuda::synchronize(device_.index());
    }
    return tensors;
  }

  struct Figures {
    double seconds = 0, seconds_p95 = 0;
    int64_t bytes = 0;
  };
  // Loads `objects` `repeats` times from a settled state (what is held elsewhere stays).
  Figures measure(const std::vector<std::string>& objects, int repeats, Meter& meter) const {
    std::vector<double> times;
    std::vector<int64_t> bytes;
    for (int r = 0; r < repeats; ++r) {
      const auto before = meter.current();
      const auto start = Clock::now();
      auto held = load(objects);
      times.push_back(secondsSince(start));
      bytes.push_back(meter.current() - before);
    }
    return {quantile(times, 0.5), quantile(times, 0.95), medianBytes(bytes)};
  }

 private:
  std::string path_;
  torch::Device device_;
};

// The HDF5 objects of the given blocks, skipping those in `except`.
std::vector<std::string> objectsOf(const std::vector<io::WeightBlock>& blocks,
                                   const std::set<std::string>& ids,
                                   const std::set<std::string>& except = {}) {
  std::vector<std::string> out;
  for (const auto& b : blocks) {
    if (ids.count(b.id) && !except.count(b.id))
      out.insert(out.end(), b.objects.begin(), b.objects.end());
  }
  return out;
}

std::set<std::string> blocksOfTask(const std::vector<io::WeightBlock>& blocks,
                                   const std::string& task) {
  std::set<std::string> out;
  for (const auto& b : blocks) {
    if (std::find(b.tasks.begin(), b.tasks.end(), task) != b.tasks.end()) out.insert(b.id);
  }
  return out;
}

// Latency (median, p95) and run memory of each batch size, weights loaded as eval loads them.
void profileRuns(const io::Results& results, const io::TaskRecord& rec, const torch::Device& device,
                 const ProfileOptions& o, Meter& meter, TaskProfile& out) {
  std::unique_ptr<models::Model> model =
      rec.arch == "torchscript"
          ? models::loadScriptModel(rec.source)
          : models::createTaskModel(rec.arch, rec.num_classes, rec.image_size, rec.mean, rec.std);
  model->loadStateDict(io::fullStateDict(results, rec.name), {false, rec.name});
  model->to(device);
  model->train(false);
  const auto precision = train::parsePrecision(rec.precision);
  const int size = rec.image_size > 0 ? rec.image_size : 224;
  torch::NoGradGuard no_grad;
  for (const int batch : o.batch_sizes) {
    // A Faster R-CNN or SSD takes [0, 1] images (it normalises them); the others normalised ones.
    const auto input =
        models::isTorchvisionDetectorArch(rec.arch)
            ? torch::rand({batch, 3, size, size}, torch::TensorOptions().device(device))
            : torch::randn({batch, 3, size, size}, torch::TensorOptions().device(device));
    auto run = [&] {
      const train::AutocastScope autocast(device, precision);
      auto y = model->forward(input);
      if (device.is_cuda()) torch::cuda::synchronize(device.index());
      return y;
    };
    for (int w = 0; w < 3; ++w) run();
    std::vector<double> times;
    for (int r = 0; r < o.repeats; ++r) {
      const auto start = Clock::now();
      run();
      times.push_back(secondsSince(start));
    }
    const auto before = meter.current();
    meter.resetPeak();
    { auto y = run(); }
    const auto peak = meter.peak();
    out.batch_sizes.push_back(batch);
    out.latency_median.push_back(quantile(times, 0.5));
    out.latency_p95.push_back(quantile(times, 0.95));
    out.run_bytes.push_back(std::max<int64_t>(0, peak - before));
  }
}

// The whole set: every task resident, shared tensors once (merged) or per task (unmerged).
void measureWholeSet(const std::vector<io::WeightBlock>& blocks,
                     const std::vector<std::set<std::string>>& mine, const Loader& loader,
                     Meter& meter, Profile& p) {
  {
    std::set<std::string> all;
    for (const auto& b : blocks) all.insert(b.id);
    const auto before = meter.current();
    const auto held = loader.load(objectsOf(blocks, all));
    p.merged_set_bytes = meter.current() - before;
  }
  {
    const auto before = meter.current();
    std::vector<std::vector<torch::Tensor>> held;
    for (std::size_t i = 0; i < mine.size(); ++i)
      held.push_back(loader.load(objectsOf(blocks, mine[i])));
    p.unmerged_set_bytes = meter.current() - before;
  }
}

}  // namespace

Profile profileResults(const std::string& path, const ProfileOptions& o) {
  disableHostCache();  // blocks as LibTorch's own allocator gives them, nothing kept
  GEMEL_THROW_IF_NOT(!o.batch_sizes.empty() && o.repeats > 0 && o.load_repeats > 0, UsageError,
                     "--batch needs at least one size, and --repeats and --load-repeats must be "
                     "positive");
  for (std::size_t i = 0; i < o.batch_sizes.size(); ++i) {
    GEMEL_THROW_IF_NOT(o.batch_sizes[i] > 0 && (i == 0 || o.batch_sizes[i] > o.batch_sizes[i - 1]),
                       UsageError, "--batch: sizes must be positive and ascending (1,2,4,8)");
  }
  const auto device = parseDevice(o.device);
  const auto results = io::readResults(path);
  const auto blocks = io::weightBlocks(results);
  Meter meter(device);
  const Loader loader(path, device);
  Profile p;
  p.device = device.str();
  p.results_path = path;
  p.memory_measure = meter.name();
  p.repeats = o.repeats;
  p.load_repeats = o.load_repeats;
  p.saved_bytes = results.achieved_savings;
  const auto n = results.tasks.size();
  const auto start = Clock::now();

  for (const auto& b : blocks) {
    const auto f = loader.measure(b.objects, o.load_repeats, meter);
    p.blocks.push_back({b.id, b.tasks, b.bytes, f.bytes, f.seconds});
  }
  log::info("profile", "{} weight blocks loaded {} times each ({} s)", blocks.size(),
            o.load_repeats, formatFixed(secondsSince(start), 1));

  // Pairs: task j loaded while task i is resident (what it adds); the diagonal is j alone.
  std::vector<std::set<std::string>> mine(n);
  for (std::size_t i = 0; i < n; ++i) mine[i] = blocksOfTask(blocks, results.tasks[i].name);
  p.pair_load_seconds.assign(n, std::vector<double>(n, 0));
  p.pair_bytes.assign(n, std::vector<int64_t>(n, 0));
  for (std::size_t i = 0; i < n; ++i) {
    TaskProfile t;
    const auto& rec = results.tasks[i];
    t.name = rec.name;
    t.arch = rec.arch;
    t.precision = rec.precision;
    t.image_size = rec.image_size;
    for (const auto& b : blocks) t.weight_bytes += mine[i].count(b.id) ? b.bytes : 0;
    const auto alone = loader.measure(objectsOf(blocks, mine[i]), o.load_repeats, meter);
    t.resident_bytes = alone.bytes;
    t.load_seconds = alone.seconds;
    t.load_seconds_p95 = alone.seconds_p95;
    {
      const auto resident = loader.load(objectsOf(blocks, mine[i]));
      for (std::size_t j = 0; j < n; ++j) {
        const auto f =
            i == j ? alone
                   : loader.measure(objectsOf(blocks, mine[j], mine[i]), o.load_repeats, meter);
        p.pair_load_seconds[i][j] = f.seconds;
        p.pair_bytes[i][j] = f.bytes;
      }
    }
    profileRuns(results, rec, device, o, meter, t);
    log::info("profile",
              "[{}/{}] {}: loads in {} ms, {} resident; batch {} runs in {} ms "
              "({} s so far)",
              i + 1, n, t.name, formatFixed(t.load_seconds * 1e3, 1), formatBytes(t.resident_bytes),
              t.batch_sizes.back(), formatFixed(t.latency_median.back() * 1e3, 1),
              formatFixed(secondsSince(start), 0));
    p.tasks.push_back(std::move(t));
  }

  measureWholeSet(blocks, mine, loader, meter, p);
  log::info("profile",
            "all {} tasks resident: merged {}, unmerged {} (measured; the merge saved {})", n,
            formatBytes(p.merged_set_bytes), formatBytes(p.unmerged_set_bytes),
            formatBytes(p.saved_bytes));
  return p;
}

}  // namespace gemel::edge
