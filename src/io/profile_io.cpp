// The profile and simulation files, the scheduler's models built from a profile, and the sweep.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "data/hdf5.h"  // internal to data and io
#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "gemel/core/format.h"
#include "gemel/edge/profile.h"

namespace gemel::edge {
namespace {

template <typename T>
hid_t nativeType();
template <>
hid_t nativeType<int64_t>() {
  return H5T_NATIVE_INT64;
}
template <>
hid_t nativeType<double>() {
  return H5T_NATIVE_DOUBLE;
}

// A 1-D or 2-D table (rows of equal length) as one dataset.
template <typename T>
void writeTable(h5::File& f, const std::string& name, const std::vector<std::vector<T>>& rows) {
  const hsize_t cols = rows.empty() ? 0 : rows[0].size();
  std::vector<T> flat;
  for (const auto& r : rows) {
    GEMEL_ASSERT(r.size() == cols, "ragged table");
    flat.insert(flat.end(), r.begin(), r.end());
  }
  auto ds = h5::Dataset::create(f, name, nativeType<T>(), {rows.size(), cols}, {}, false);
  if (!flat.empty()) ds.writeAll(nativeType<T>(), flat.data());
}

template <typename T>
void writeVector(h5::File& f, const std::string& name, const std::vector<T>& values) {
  auto ds = h5::Dataset::create(f, name, nativeType<T>(), {values.size()}, {}, false);
  if (!values.empty()) ds.writeAll(nativeType<T>(), values.data());
}

// Reads a dataset of `rank` dimensions and element type T; fails naming the object otherwise.
template <typename T>
std::vector<T> readFlat(const h5::File& f, const std::string& name, std::size_t rank,
                        std::vector<hsize_t>* dims_out = nullptr) {
  if (!f.exists(name))
    f.fail(name, "missing; the profile is incomplete: run 'gemel profile' again");
  const auto ds = h5::Dataset::open(f, name);
  const auto dims = ds.dims();
  if (dims.size() != rank || !ds.hasType(nativeType<T>()))
    f.fail(name, format("expected a {}-D {} dataset", rank,
                        std::is_same_v<T, double> ? "float64" : "int64"));
  hsize_t n = 1;
  for (auto d : dims) n *= d;
  std::vector<T> out(n);
  if (n > 0) ds.readAll(nativeType<T>(), out.data());
  if (dims_out) *dims_out = dims;
  return out;
}

template <typename T>
std::vector<std::vector<T>> readSquare(const h5::File& f, const std::string& name, std::size_t n) {
  std::vector<hsize_t> dims;
  const auto flat = readFlat<T>(f, name, 2, &dims);
  if (dims[0] != n || dims[1] != n)
    f.fail(name, format("expected [{}, {}] (one row and column per task)", n, n));
  std::vector<std::vector<T>> out(n);
  for (std::size_t i = 0; i < n; ++i)
    out[i].assign(flat.begin() + i * n, flat.begin() + (i + 1) * n);
  return out;
}

// Writes through a temporary file beside `path`, renamed over it when complete.
template <typename Fill>
void writeAtomically(const std::string& path, Fill fill) {
  const auto temp = tempPathFor(path);
  TempFileGuard guard(temp);
  {
    auto f = h5::File::create(temp, path);
    fill(f);
    f.close();
  }
  commitTempFile(temp, path);
  guard.release();
}

}  // namespace

void writeProfile(const std::string& path, const Profile& p) {
  writeAtomically(path, [&](h5::File& f) {
    f.setAttr("/", "format", std::string(kProfileFormat));
    f.setAttr("/", "version", kProfileVersion);
    f.setAttr("/", "device", p.device);
    f.setAttr("/", "results", p.results_path);
    f.setAttr("/", "memory_measure", p.memory_measure);
    f.setAttr("/", "repeats", static_cast<int64_t>(p.repeats));
    f.setAttr("/", "load_repeats", static_cast<int64_t>(p.load_repeats));
    f.setAttr("/", "saved_bytes", p.saved_bytes);
    f.setAttr("/", "merged_set_bytes", p.merged_set_bytes);
    f.setAttr("/", "unmerged_set_bytes", p.unmerged_set_bytes);
    std::vector<std::string> order;
    for (const auto& t : p.tasks) order.push_back(t.name);
    f.setAttr("/", "tasks", order);
    f.createGroup("/tasks");
    for (const auto& t : p.tasks) {
      const auto g = "/tasks/" + t.name;
      f.createGroup(g);
      f.setAttr(g, "arch", t.arch);
      f.setAttr(g, "precision", t.precision);
      f.setAttr(g, "image_size", static_cast<int64_t>(t.image_size));
      f.setAttr(g, "weight_bytes", t.weight_bytes);
      f.setAttr(g, "resident_bytes", t.resident_bytes);
      f.setAttr(g, "load_seconds", t.load_seconds);
      f.setAttr(g, "load_seconds_p95", t.load_seconds_p95);
      writeVector(f, g + "/batch_sizes",
                  std::vector<int64_t>(t.batch_sizes.begin(), t.batch_sizes.end()));
      writeVector(f, g + "/latency_median", t.latency_median);
      writeVector(f, g + "/latency_p95", t.latency_p95);
      writeVector(f, g + "/run_bytes", t.run_bytes);
    }
    f.createGroup("/blocks");
    for (std::size_t i = 0; i < p.blocks.size(); ++i) {
      const auto& b = p.blocks[i];
      char name[32];
      std::snprintf(name, sizeof name, "/blocks/%04zu", i);
      const std::string g = name;
      f.createGroup(g);
      f.setAttr(g, "id", b.id);
      f.setAttr(g, "tasks", b.tasks);
      f.setAttr(g, "weight_bytes", b.weight_bytes);
      f.setAttr(g, "resident_bytes", b.resident_bytes);
      f.setAttr(g, "load_seconds", b.load_seconds);
    }
    f.createGroup("/pairs");
    writeTable(f, "/pairs/load_seconds", p.pair_load_seconds);
    writeTable(f, "/pairs/bytes", p.pair_bytes);
  });
}

Profile readProfile(const std::string& path) {
  const auto f = h5::File::open(path, false, "run 'gemel profile' again to write a complete one");
  const bool ours = f.hasAttr("/", "format") && f.attrString("/", "format") == kProfileFormat;
  GEMEL_THROW_IF_NOT(ours, InputError,
                     "{}: not a gemel profile (no format=\"{}\" attribute); give the file that "
                     "'gemel profile --out' wrote",
                     path, kProfileFormat);
  const auto version = f.attrInt("/", "version");
  GEMEL_THROW_IF_NOT(version == kProfileVersion, InputError,
                     "{}: profile format version {}; this gemel reads version {}: run 'gemel "
                     "profile' again",
                     path, version, kProfileVersion);
  Profile p;
  p.device = f.attrString("/", "device");
  p.results_path = f.attrString("/", "results");
  p.memory_measure = f.attrString("/", "memory_measure");
  p.repeats = static_cast<int>(f.attrInt("/", "repeats"));
  p.load_repeats = static_cast<int>(f.attrInt("/", "load_repeats"));
  p.saved_bytes = f.attrInt("/", "saved_bytes");
  p.merged_set_bytes = f.attrInt("/", "merged_set_bytes");
  p.unmerged_set_bytes = f.attrInt("/", "unmerged_set_bytes");
  for (const auto& name : f.attrStrings("/", "tasks")) {
    const auto g = "/tasks/" + name;
    if (!f.exists(g)) f.fail(g, "missing, yet named in the root's tasks attribute");
    TaskProfile t;
    t.name = name;
    t.arch = f.attrString(g, "arch");
    t.precision = f.attrString(g, "precision");
    t.image_size = static_cast<int>(f.attrInt(g, "image_size"));
    t.weight_bytes = f.attrInt(g, "weight_bytes");
    t.resident_bytes = f.attrInt(g, "resident_bytes");
    t.load_seconds = f.attrDouble(g, "load_seconds");
    t.load_seconds_p95 = f.attrDouble(g, "load_seconds_p95");
    for (auto b : readFlat<int64_t>(f, g + "/batch_sizes", 1))
      t.batch_sizes.push_back(static_cast<int>(b));
    t.latency_median = readFlat<double>(f, g + "/latency_median", 1);
    t.latency_p95 = readFlat<double>(f, g + "/latency_p95", 1);
    t.run_bytes = readFlat<int64_t>(f, g + "/run_bytes", 1);
    const auto n = t.batch_sizes.size();
    if (n == 0 || t.latency_median.size() != n || t.latency_p95.size() != n ||
        t.run_bytes.size() != n)
      f.fail(g,
             "batch_sizes, latency_median, latency_p95 and run_bytes must have one entry per "
             "batch size; run 'gemel profile' again");
    p.tasks.push_back(std::move(t));
  }
  for (const auto& n : f.children("/blocks")) {
    const auto g = "/blocks/" + n;
    BlockProfile b;
    b.id = f.attrString(g, "id");
    b.tasks = f.attrStrings(g, "tasks");
    b.weight_bytes = f.attrInt(g, "weight_bytes");
    b.resident_bytes = f.attrInt(g, "resident_bytes");
    b.load_seconds = f.attrDouble(g, "load_seconds");
    p.blocks.push_back(std::move(b));
  }
  p.pair_load_seconds = readSquare<double>(f, "/pairs/load_seconds", p.tasks.size());
  p.pair_bytes = readSquare<int64_t>(f, "/pairs/bytes", p.tasks.size());
  return p;
}

std::vector<ModelProfile> modelProfiles(const Profile& p, bool merged) {
  std::vector<ModelProfile> out;
  for (const auto& t : p.tasks) {
    ModelProfile m;
    m.name = t.name;
    m.batch_sizes = t.batch_sizes;
    m.latency_seconds = t.latency_median;
    m.run_bytes = t.run_bytes;
    if (merged) {
      for (const auto& b : p.blocks) {
        if (std::find(b.tasks.begin(), b.tasks.end(), t.name) != b.tasks.end())
          m.blocks.push_back({b.id, b.resident_bytes, b.load_seconds});
      }
    } else {
      m.blocks.push_back({"unmerged:" + t.name, t.resident_bytes, t.load_seconds});
    }
    out.push_back(std::move(m));
  }
  return out;
}

Sweep runSweep(const Profile& p, const std::vector<std::string>& modes,
               const std::vector<int64_t>& memory_bytes, const SimulationOptions& options) {
  GEMEL_THROW_IF_NOT(!modes.empty() && !memory_bytes.empty(), UsageError,
                     "give at least one --mode and one --memory budget");
  Sweep s;
  s.modes = modes;
  s.memory_bytes = memory_bytes;
  s.options = options;
  for (const auto& t : p.tasks) s.streams.push_back(t.name);
  std::map<std::string, std::vector<ModelProfile>> sets;
  for (const auto& mode : modes) {
    GEMEL_THROW_IF_NOT(mode == "merged" || mode == "unmerged" || mode == "no-swap-cost", UsageError,
                       "--mode '{}': expected merged, unmerged or no-swap-cost", mode);
    sets[mode] = modelProfiles(p, mode == "merged");
  }
  // Every budget must hold the largest model alone, in every mode: say so before running.
  for (const auto& [mode, models] : sets) {
    for (const auto& m : models) {
      const int64_t need = m.residentBytes() + m.run_bytes[0];
      const auto low = *std::min_element(memory_bytes.begin(), memory_bytes.end());
      GEMEL_THROW_IF_NOT(need <= low, UsageError,
                         "--memory: the budget of {} ({} bytes) is below what model '{}' needs "
                         "alone in mode {}: {} ({} bytes: its weights and a batch of {}); give "
                         "budgets of at least {}MiB",
                         formatBytes(low), low, m.name, mode, formatBytes(need), need,
                         m.batch_sizes[0], static_cast<int64_t>(std::ceil(need / 1048576.0)));
    }
  }
  for (const auto& mode : modes) {
    std::map<std::string, int64_t> blocks;
    int64_t run = 0;
    for (const auto& m : sets[mode]) {
      for (const auto& b : m.blocks) blocks[b.id] = b.bytes;
      run = std::max(run, m.run_bytes[0]);
    }
    int64_t all = run;
    for (const auto& [id, bytes] : blocks) all += bytes;
    s.all_resident_bytes.push_back(all);
    std::vector<SimulationResult> row;
    for (auto budget : memory_bytes) {
      auto o = options;
      o.memory_bytes = budget;
      o.load_costs = mode != "no-swap-cost";
      row.push_back(simulate(sets[mode], o));
    }
    s.runs.push_back(std::move(row));
  }
  return s;
}

void writeSweep(const std::string& path, const Sweep& s) {
  writeAtomically(path, [&](h5::File& f) {
    f.setAttr("/", "format", std::string(kSimulationFormat));
    f.setAttr("/", "version", int64_t{1});
    f.setAttr("/", "results", s.results_path);
    f.setAttr("/", "profile", s.profile_path);
    f.setAttr("/", "modes", s.modes);
    f.setAttr("/", "streams", s.streams);
    f.setAttr("/", "fps", s.options.fps);
    f.setAttr("/", "sla_seconds", s.options.sla_seconds);
    f.setAttr("/", "frames", s.options.frames);
    f.setAttr("/", "batch", static_cast<int64_t>(s.options.batch));
    f.setAttr("/", "preload", static_cast<int64_t>(s.options.preload ? 1 : 0));
    writeVector(f, "/memory_bytes", s.memory_bytes);
    for (std::size_t m = 0; m < s.modes.size(); ++m) {
      const auto g = "/" + s.modes[m];
      f.createGroup(g);
      f.setAttr(g, "all_resident_bytes", s.all_resident_bytes[m]);
      std::vector<int64_t> processed, skipped, within, loads;
      std::vector<double> load_seconds;
      std::vector<std::vector<int64_t>> sp, ss, sw;
      for (const auto& r : s.runs[m]) {
        processed.push_back(r.processed());
        skipped.push_back(r.skipped());
        int64_t w = 0;
        std::vector<int64_t> p1, s1, w1;
        for (const auto& st : r.streams) {
          w += st.within_sla;
          p1.push_back(st.processed);
          s1.push_back(st.skipped);
          w1.push_back(st.within_sla);
        }
        within.push_back(w);
        loads.push_back(r.loads);
        load_seconds.push_back(r.load_seconds);
        sp.push_back(p1), ss.push_back(s1), sw.push_back(w1);
      }
      writeVector(f, g + "/processed", processed);
      writeVector(f, g + "/skipped", skipped);
      writeVector(f, g + "/within_sla", within);
      writeVector(f, g + "/loads", loads);
      writeVector(f, g + "/load_seconds", load_seconds);
      writeTable(f, g + "/stream_processed", sp);
      writeTable(f, g + "/stream_skipped", ss);
      writeTable(f, g + "/stream_within_sla", sw);
    }
  });
}

namespace {

// "4GiB" -> {4, "gib"}; false when it is not a number followed by letters.
bool splitQuantity(const std::string& text, double& value, std::string& unit) {
  std::size_t used = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    return false;
  }
  unit.clear();
  for (auto c : text.substr(used)) {
    if (c != ' ') unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return std::isfinite(value) && value >= 0;
}

}  // namespace

int64_t parseBytes(const std::string& text, const std::string& what) {
  static const std::map<std::string, double> units{
      {"", 1},       {"b", 1},         {"kb", 1e3},         {"mb", 1e6},
      {"gb", 1e9},   {"kib", 1024.0},  {"mib", 1048576.0},  {"gib", 1073741824.0},
      {"k", 1024.0}, {"m", 1048576.0}, {"g", 1073741824.0}, {"tib", 1099511627776.0}};
  double value = 0;
  std::string unit;
  const bool ok = splitQuantity(text, value, unit) && units.count(unit);
  GEMEL_THROW_IF_NOT(ok, UsageError,
                     "{} '{}': expected a size such as 4GiB, 512MiB, 1.5GB or a number of bytes",
                     what, text);
  return static_cast<int64_t>(std::llround(value * units.at(unit)));
}

double parseSeconds(const std::string& text, const std::string& what) {
  static const std::map<std::string, double> units{{"", 1}, {"s", 1}, {"ms", 1e-3}, {"us", 1e-6}};
  double value = 0;
  std::string unit;
  const bool ok = splitQuantity(text, value, unit) && units.count(unit) && value > 0;
  GEMEL_THROW_IF_NOT(ok, UsageError, "{} '{}': expected a positive duration such as 100ms or 0.1s",
                     what, text);
  return value * units.at(unit);
}

}  // namespace gemel::edge
