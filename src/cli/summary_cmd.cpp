// gemel summary: one table, CSV and HTML page over a sweep's workloads.
#include <cstdio>
#include <filesystem>

#include "gemel/cli/commands.h"
#include "gemel/cli/options.h"
#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "gemel/core/format.h"
#include "gemel/dist/world.h"
#include "gemel/io/sweep.h"

namespace gemel::cli {

namespace fs = std::filesystem;

int runSummary(const Args& args, const dist::World& world) {
  po::options_description desc("summary options");
  desc.add_options()("inputs", po::value<std::vector<std::string>>()->multitoken(),
                     "a sweep's output root (slurm/sweep.sbatch's OUT_ROOT: one directory per "
                     "workload), or results.h5 files; several may be given")(
      "list", po::value<std::string>(),
      "the sweep's LIST.txt (one workload YAML per line): a config with no directory is a "
      "missing row")("out", po::value<std::string>(),
                     "where summary.csv and summary.html go (default: the output root, when one "
                     "directory is given; else the current directory)")(
      "require-complete", po::bool_switch(),
      "exit 5 unless every workload finished with every task at its target");
  po::positional_options_description positional;
  positional.add("inputs", -1);
  po::variables_map vm;
  if (!parseCommandLine("summary", "OUT_ROOT | results.h5... [--list LIST.txt] [--out DIR]", desc,
                        args, vm, "gemel", &positional)) {
    return 0;
  }
  GEMEL_THROW_IF_NOT(vm.count("inputs"), UsageError,
                     "give a sweep's output root or results.h5 files; run 'gemel summary "
                     "--help' for the options");
  if (!world.lead()) return 0;
  const auto inputs = vm["inputs"].as<std::vector<std::string>>();
  const auto rows = io::collectSweep(inputs, vm.count("list") ? vm["list"].as<std::string>() : "");
  GEMEL_THROW_IF_NOT(!rows.empty(), InputError,
                     "{}: no workloads found (no subdirectory, no results.h5); give the "
                     "directory sweep.sbatch wrote into",
                     inputs.front());
  std::string out = ".";
  if (vm.count("out")) {
    out = vm["out"].as<std::string>();
  } else if (inputs.size() == 1 && fs::is_directory(inputs.front())) {
    out = inputs.front();
  }
  requireWritableDirectory(out, "pass another --out directory");
  const auto csv = (fs::path(out) / "summary.csv").string();
  const auto page = (fs::path(out) / "summary.html").string();
  const auto csv_text = io::sweepCsv(rows);
  writeFileAtomic(csv, csv_text.data(), csv_text.size());
  const auto title = "gemel sweep: " + fs::absolute(inputs.front()).lexically_normal().string();
  const auto html = io::sweepHtml(rows, title);
  writeFileAtomic(page, html.data(), html.size());
  std::printf("%s", io::sweepTable(rows).c_str());
  int complete = 0;
  for (const auto& r : rows) complete += r.complete();
  std::printf("%d of %zu workloads finished with every task at its target\nsummary: %s, %s\n",
              complete, rows.size(), csv.c_str(), page.c_str());
  const bool all = complete == static_cast<int>(rows.size());
  return vm["require-complete"].as<bool>() && !all ? static_cast<int>(ExitCode::kBelowTarget) : 0;
}

}  // namespace gemel::cli
