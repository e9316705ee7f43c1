// gemel profile / simulate / report: from a merge's results to an edge plan and a page of plots.
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include "gemel/cli/commands.h"
#include "gemel/cli/options.h"
#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "gemel/core/format.h"
#include "gemel/core/json.h"
#include "gemel/core/log.h"
#include "gemel/edge/profile.h"
#include "gemel/io/results.h"

extern char** environ;

namespace gemel::cli {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> splitList(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string joinList(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string mib(int64_t bytes) { return formatFixed(bytes / 1048576.0, 1) + " MiB"; }

int runProfileCmd(const Args& args, const dist::World& world) {
  po::options_description desc("profile options");
  desc.add_options()("results", po::value<std::string>()->required(), "results.h5 of gemel merge")(
      "device", po::value<std::string>()->default_value("cpu"), "cpu, cuda or cuda:N")(
      "batch", po::value<std::string>()->default_value("1,2,4,8"),
      "batch sizes to time, ascending")("repeats", po::value<int>()->default_value(20),
                                        "timed runs per batch size (after 3 warm-up runs)")(
      "load-repeats", po::value<int>()->default_value(5), "timed loads per block, task and pair")(
      "out", po::value<std::string>()->required(), "the profile to write (P.h5)");
  addThreadsOption(desc);
  po::variables_map vm;
  if (!parseCommandLine("profile",
                        "--results R.h5 [--device cpu|cuda:N] [--batch 1,2,4,8] --out P.h5", desc,
                        args, vm))
    return 0;
  setupThreads(vm, world);
  edge::ProfileOptions o;
  o.device = vm["device"].as<std::string>();
  o.batch_sizes.clear();
  for (const auto& b : splitList(vm["batch"].as<std::string>())) {
    const auto n = parseInt(b);
    GEMEL_THROW_IF_NOT(n && *n > 0, UsageError, "--batch '{}': '{}' is not a positive batch size",
                       vm["batch"].as<std::string>(), b);
    o.batch_sizes.push_back(*n);
  }
  o.repeats = vm["repeats"].as<int>();
  o.load_repeats = vm["load-repeats"].as<int>();
  const auto out = vm["out"].as<std::string>();
  const auto p = edge::profileResults(vm["results"].as<std::string>(), o);
  edge::writeProfile(out, p);
  std::printf("%-28s %10s %12s %10s", "task", "weights", "resident", "load ms");
  for (auto b : o.batch_sizes) std::printf("  b%-2d ms (p95)", b);
  std::printf("\n");
  for (const auto& t : p.tasks) {
    std::printf("%-28s %10s %12s %10.1f", t.name.c_str(), mib(t.weight_bytes).c_str(),
                mib(t.resident_bytes).c_str(), t.load_seconds * 1e3);
    for (std::size_t i = 0; i < t.batch_sizes.size(); ++i)
      std::printf("  %5.1f (%5.1f)", t.latency_median[i] * 1e3, t.latency_p95[i] * 1e3);
    std::printf("\n");
  }
  const int64_t measured = p.unmerged_set_bytes - p.merged_set_bytes;
  std::printf(
      "all tasks resident (%s, measured): unmerged %s, merged %s: %s less; the merge saved "
      "%s of weights (%+.1f%%)\n",
      p.memory_measure.c_str(), mib(p.unmerged_set_bytes).c_str(), mib(p.merged_set_bytes).c_str(),
      mib(measured).c_str(), mib(p.saved_bytes).c_str(),
      p.saved_bytes > 0 ? 100.0 * (measured - p.saved_bytes) / p.saved_bytes : 0.0);
  std::printf("profile: %s\n", out.c_str());
  return 0;
}

// The results must hold a merge, and the profile must be of its tasks and blocks.
void checkInputs(const io::Results& r, const std::string& results_path, const edge::Profile& p,
                 const std::string& profile_path) {
  GEMEL_THROW_IF_NOT(!r.shared.empty(), InputError,
                     "{}: holds no merge: no layer is shared ({} trials, status {}); simulate "
                     "compares merged models with unmerged ones: give the results.h5 of a 'gemel "
                     "merge' that accepted at least one group",
                     results_path, r.trials.size(), r.status);
  std::vector<std::string> theirs, ours;
  for (const auto& t : p.tasks) theirs.push_back(t.name);
  for (const auto& t : r.tasks) ours.push_back(t.name);
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  GEMEL_THROW_IF_NOT(sorted(theirs) == sorted(ours), InputError,
                     "{}: a profile of other tasks ({}); {} has tasks {}: run 'gemel profile "
                     "--results {} --out {}' again",
                     profile_path, joinList(theirs), results_path, joinList(ours), results_path,
                     profile_path);
  std::vector<std::string> blocks_p, blocks_r;
  for (const auto& b : p.blocks) blocks_p.push_back(b.id);
  for (const auto& b : io::weightBlocks(r)) blocks_r.push_back(b.id);
  GEMEL_THROW_IF_NOT(sorted(blocks_p) == sorted(blocks_r), InputError,
                     "{}: a profile of another merge of these tasks (weight blocks {}; {} has {}): "
                     "run 'gemel profile --results {} --out {}' again",
                     profile_path, joinList(blocks_p), results_path, joinList(blocks_r),
                     results_path, profile_path);
}

// Budgets from what the largest model needs alone to a little above the unmerged set.
std::vector<int64_t> autoBudgets(const edge::Profile& p) {
  int64_t low = 0, all = 0, run = 0;
  for (bool merged : {true, false}) {
    for (const auto& m : edge::modelProfiles(p, merged)) {
      low = std::max(low, m.residentBytes() + m.run_bytes[0]);
      run = std::max(run, m.run_bytes[0]);
      if (!merged) all += m.residentBytes();
    }
  }
  const int64_t high = static_cast<int64_t>((all + run) * 1.1);
  std::vector<int64_t> out;
  const int steps = 12;
  for (int i = 0; i < steps; ++i) {
    const double b = low + (high - low) * double(i) / (steps - 1);
    out.push_back(static_cast<int64_t>(std::ceil(b / 1048576.0)) * 1048576);
  }
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// The sweep as one JSON object (simulate --json).
void printSweepJson(const edge::Sweep& sweep, const std::vector<int64_t>& budgets,
                    int64_t offered) {
  JsonWriter j;
  j.beginObject();
  j.key("frames_offered").value(offered);
  j.key("runs").beginArray();
  for (std::size_t m = 0; m < sweep.modes.size(); ++m) {
    for (std::size_t b = 0; b < budgets.size(); ++b) {
      const auto& run = sweep.runs[m][b];
      int64_t within = 0;
      for (const auto& s : run.streams) within += s.within_sla;
      j.beginObject();
      j.key("mode").value(sweep.modes[m]);
      j.key("memory_bytes").value(budgets[b]);
      j.key("processed").value(run.processed());
      j.key("skipped").value(run.skipped());
      j.key("within_sla").value(within);
      j.key("loads").value(run.loads);
      j.key("load_seconds").value(run.load_seconds);
      j.endObject();
    }
  }
  j.endArray();
  j.endObject();
  std::printf("%s\n", j.str().c_str());
}

// The sweep as a table: one row per budget and mode.
void printSweepTable(const edge::Sweep& sweep, const std::vector<int64_t>& budgets,
                     int64_t offered) {
  std::printf("%12s  %-13s %10s %9s %11s %7s %10s\n", "memory", "mode", "processed", "skipped",
              "within SLA", "loads", "loading s");
  for (std::size_t b = 0; b < budgets.size(); ++b) {
    for (std::size_t m = 0; m < sweep.modes.size(); ++m) {
      const auto& run = sweep.runs[m][b];
      int64_t within = 0;
      for (const auto& s : run.streams) within += s.within_sla;
      std::printf("%12s  %-13s %9.1f%% %8.1f%% %10.1f%% %7lld %10.2f\n",
                  m == 0 ? mib(budgets[b]).c_str() : "", sweep.modes[m].c_str(),
                  100.0 * run.processed() / offered, 100.0 * run.skipped() / offered,
                  100.0 * within / offered, static_cast<long long>(run.loads), run.load_seconds);
    }
  }
}

int runSimulateCmd(const Args& args, const dist::World& world) {
  po::options_description desc("simulate options");
  desc.add_options()("results", po::value<std::string>()->required(), "results.h5 of gemel merge")(
      "profile", po::value<std::string>()->required(), "its profile (gemel profile --out)")(
      "memory", po::value<std::string>()->default_value("auto"),
      "memory budgets, e.g. 2GiB,4GiB,8GiB; auto: 12 from the largest model to all of them")(
      "fps", po::value<double>()->default_value(30), "frames per second of every camera stream")(
      "sla", po::value<std::string>()->default_value("100ms"),
      "a frame's deadline after it arrives")("frames", po::value<int64_t>()->default_value(3000),
                                             "frames per stream")(
      "batch", po::value<std::string>()->default_value("auto"),
      "frames per run: auto (the largest profiled size waiting) or N")(
      "mode", po::value<std::string>()->default_value("merged,unmerged,no-swap-cost"),
      "merged, unmerged, no-swap-cost (unmerged with free loads)")(
      "cold-start", po::bool_switch(),
      "start with nothing loaded (default: models are loaded "
      "before the first frame, while they fit)")("out", po::value<std::string>(),
                                                 "write the tables to this HDF5 file (S.h5)")(
      "json", po::bool_switch(), "print JSON instead of a table");
  po::variables_map vm;
  if (!parseCommandLine("simulate",
                        "--results R.h5 --profile P.h5 [--memory 2GiB,4GiB] [--out S.h5]", desc,
                        args, vm))
    return 0;
  const auto results_path = vm["results"].as<std::string>();
  const auto profile_path = vm["profile"].as<std::string>();
  const auto r = io::readResults(results_path);
  const auto p = edge::readProfile(profile_path);
  checkInputs(r, results_path, p, profile_path);

  edge::SimulationOptions o;
  o.fps = vm["fps"].as<double>();
  o.sla_seconds = edge::parseSeconds(vm["sla"].as<std::string>(), "--sla");
  o.frames = vm["frames"].as<int64_t>();
  o.preload = !vm["cold-start"].as<bool>();
  const auto batch = vm["batch"].as<std::string>();
  if (batch != "auto") {
    const auto n = parseInt(batch);
    GEMEL_THROW_IF_NOT(n && *n > 0, UsageError, "--batch '{}': expected auto or a positive size",
                       batch);
    o.batch = *n;
  }
  std::vector<int64_t> budgets;
  if (vm["memory"].as<std::string>() == "auto") {
    budgets = autoBudgets(p);
  } else {
    for (const auto& m : splitList(vm["memory"].as<std::string>()))
      budgets.push_back(edge::parseBytes(m, "--memory"));
  }
  auto sweep = edge::runSweep(p, splitList(vm["mode"].as<std::string>()), budgets, o);
  sweep.results_path = results_path;
  sweep.profile_path = profile_path;
  if (vm.count("out")) edge::writeSweep(vm["out"].as<std::string>(), sweep);

  const int64_t offered = o.frames * static_cast<int64_t>(p.tasks.size());
  if (vm["json"].as<bool>()) {
    printSweepJson(sweep, budgets, offered);
    return 0;
  }
  std::printf("%zu streams x %lld frames at %g fps, SLA %g ms, batch %s, %s\n", p.tasks.size(),
              static_cast<long long>(o.frames), o.fps, o.sla_seconds * 1e3, batch.c_str(),
              o.preload ? "models preloaded while they fit" : "cold start");
  printSweepTable(sweep, budgets, offered);
  if (vm.count("out")) std::printf("simulation: %s\n", vm["out"].as<std::string>().c_str());
  return 0;
}

// Where the report script and its Python are: the environment, else what the build recorded.
std::string reportPython() {
  if (const char* p = std::getenv("GEMEL_PYTHON"); p && *p) return p;
  return GEMEL_DEFAULT_PYTHON;
}

std::string reportScript() {
  if (const char* p = std::getenv("GEMEL_REPORT_SCRIPT"); p && *p) return p;
  return std::string(GEMEL_SOURCE_DIR) + "/data_tools/report.py";
}

int spawnAndWait(const std::vector<std::string>& argv) {
  std::vector<char*> raw;
  for (const auto& a : argv) raw.push_back(const_cast<char*>(a.c_str()));
  raw.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, raw[0], nullptr, nullptr, raw.data(), environ);
  GEMEL_THROW_IF_NOT(rc == 0, InputError,
                     "cannot run {}: {}; gemel report needs the project's Python (set GEMEL_PYTHON "
                     "to a Python with matplotlib and h5py)",
                     argv[0], std::strerror(rc));
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int runReportCmd(const Args& args, const dist::World& world) {
  po::options_description desc("report options");
  desc.add_options()("results", po::value<std::string>()->required(), "results.h5 of gemel merge")(
      "profile", po::value<std::string>(), "its profile (gemel profile --out)")(
      "simulation", po::value<std::string>(), "its simulation (gemel simulate --out)")(
      "out", po::value<std::string>()->required(), "the HTML page to write");
  po::variables_map vm;
  if (!parseCommandLine("report",
                        "--results R.h5 [--profile P.h5] [--simulation S.h5] --out report.html",
                        desc, args, vm))
    return 0;
  // Inputs are checked here, so that their errors read like every other gemel error.
  const auto results_path = vm["results"].as<std::string>();
  const auto r = io::readResults(results_path);
  std::vector<std::string> argv{reportPython(), reportScript(), "--results", results_path};
  std::vector<std::string> sections{"workload", "timeline", "scores", "sharing"};
  if (vm.count("profile")) {
    const auto path = vm["profile"].as<std::string>();
    checkInputs(r, results_path, edge::readProfile(path), path);
    argv.insert(argv.end(), {"--profile", path});
    sections.push_back("profile");
  }
  if (vm.count("simulation")) {
    const auto path = vm["simulation"].as<std::string>();
    const auto f = readFile(path, "simulation file");
    GEMEL_THROW_IF_NOT(f.size() > 8 && std::string(f.data() + 1, 3) == "HDF", InputError,
                       "{}: not an HDF5 file; give the file that 'gemel simulate --out' wrote",
                       path);
    argv.insert(argv.end(), {"--simulation", path});
    sections.push_back("simulation");
  }
  GEMEL_THROW_IF_NOT(
      fs::exists(reportScript()), InputError,
      "the report script {} is missing; set GEMEL_REPORT_SCRIPT to data_tools/report.py "
      "of a gemel checkout",
      reportScript());
  const auto out = vm["out"].as<std::string>();
  const auto temp = tempPathFor(out);
  TempFileGuard guard(temp);
  argv.insert(argv.end(), {"--out", temp});
  const int rc = spawnAndWait(argv);
  GEMEL_THROW_IF_NOT(rc == 0, InputError,
                     "the report script ({}) failed with exit code {} (its message is above); {} "
                     "was not written",
                     reportScript(), rc, out);
  // The page must hold every section it was asked for, each with its figures.
  const auto bytes = readFile(temp, "report");
  const std::string html(bytes.begin(), bytes.end());
  for (const auto& s : sections) {
    GEMEL_THROW_IF_NOT(html.find("<section id=\"" + s + "\"") != std::string::npos, InputError,
                       "the report script wrote no '{}' section; {} was not written", s, out);
  }
  std::size_t figures = 0;
  for (auto at = html.find("src=\"data:image/png;base64,"); at != std::string::npos;
       at = html.find("src=\"data:image/png;base64,", at + 1))
    ++figures;
  GEMEL_THROW_IF_NOT(figures >= sections.size(), InputError,
                     "the report holds {} figures for {} sections; {} was not written", figures,
                     sections.size(), out);
  commitTempFile(temp, out);
  guard.release();
  std::printf("report: %s (%zu sections, %zu figures, %s)\n", fs::absolute(out).string().c_str(),
              sections.size(), figures, formatBytes(static_cast<int64_t>(html.size())).c_str());
  return 0;
}

}  // namespace

int runProfile(const Args& args, const dist::World& world) { return runProfileCmd(args, world); }
int runSimulate(const Args& args, const dist::World& world) { return runSimulateCmd(args, world); }
int runReport(const Args& args, const dist::World& world) { return runReportCmd(args, world); }

}  // namespace gemel::cli
