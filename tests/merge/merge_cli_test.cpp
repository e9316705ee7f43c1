// The merge pipeline as a user runs it, on a tiny two-camera workload cut from Fashion-MNIST:
// gemel train -> gemel merge -> gemel eval -> gemel export, then Python (the pinned torch and
// torchvision wheels) loads the exported weights and must measure the accuracy gemel eval printed.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <regex>

#include "cli_support.h"
#include "fashion_workload.h"
#include "gemel/core/format.h"
#include "gemel/data/sources.h"
#include "gemel/io/results.h"
#include "test_support.h"

namespace gemel {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::run;
using testing::shellQuote;
using testing::TempDir;
using testing::writeText;

using testing::gemel;
using testing::jsonNumber;

// Two resnet18 tasks on different class subsets, 16x16 images, a few hundred images each.
std::string tinyWorkload(const TempDir& dir) {
  testing::FashionWorkload w;
  w.header =
      "name: tiny\n"
      "defaults: {batch_size: 32, accuracy_target: 0.5}\n"
      "search: {strategy: greedy, epochs_per_trial: 1, lr: 0.05, max_trials: 2}\n";
  w.tasks = {{"shoes_a_resnet18", {5, 7, 9}}, {"bags_b_resnet18", {8, 1, 3}}};
  w.max_train = 320;
  w.max_val = 120;
  w.task_extra = ", transforms: {mean: [0.3, 0.3, 0.3], std: [0.35, 0.35, 0.35]}";
  return testing::writeFashionWorkload(dir, "tiny.yaml", w);
}

// Trains the tiny workload's baselines; returns the trained workload's path.
std::string trainTiny(const TempDir& dir) {
  const auto r = gemel(format("train --config {} --epochs 1 --out {}",
                              shellQuote(tinyWorkload(dir)), shellQuote(dir.file("trained"))));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return dir.file("trained/tiny.trained.yaml");
}

// Writes `file` in `dir`: the YAML at `from` with its first `find` replaced by `replace`.
std::string editedCopy(const TempDir& dir, const std::string& from, const std::string& file,
                       const std::string& find, const std::string& replace) {
  auto text = testing::readText(from);
  const auto at = text.find(find);
  EXPECT_NE(at, std::string::npos) << find << " in " << text;
  if (at != std::string::npos) text.replace(at, find.size(), replace);
  writeText(dir.file(file), text);
  return dir.file(file);
}

TEST(MergeCli, TrainMergeEvalExportEndToEnd) {
  const auto start = std::chrono::steady_clock::now();
  TempDir dir;
  const auto trained = trainTiny(dir);
  ASSERT_TRUE(fs::exists(trained));
  ASSERT_TRUE(fs::exists(dir.file("trained/shoes_a_resnet18.pt")));

  auto r = gemel(format("merge --config {} --out {} --fixed-steps 6", shellQuote(trained),
                        shellQuote(dir.file("merged"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("trial"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("weight bytes:"), std::string::npos) << r.output;
  // Each target with what its val set can resolve.
  EXPECT_NE(r.output.find("on 120 val images; a score's standard error there is"),
            std::string::npos)
      << r.output;
  const auto results = dir.file("merged/results.h5");
  ASSERT_TRUE(fs::exists(results));

  // eval re-measures from the file: every task at or above its target (the accepted state
  // always is), and the numbers match what merge recorded.
  r = gemel(format("eval --results {} --json", shellQuote(results)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto json = r.output.substr(r.output.find('{'));
  EXPECT_NE(json.find("\"all_met\":true"), std::string::npos) << json;
  const double shoes = jsonNumber(json, "shoes_a_resnet18", "score");
  const double bags = jsonNumber(json, "bags_b_resnet18", "score");
  const double total = jsonNumber(json, "{", "total_bytes");
  const double merged = jsonNumber(json, "{", "merged_bytes");

  // The merge shared something: fewer bytes than the unmerged models hold.
  EXPECT_LT(merged, total - 1e5) << "nothing was shared: total " << total << " merged " << merged;
  // results.h5 holds each shared tensor once: its size follows the merged bytes.
  const double file_bytes = static_cast<double>(fs::file_size(results));
  EXPECT_LT(file_bytes, merged + 2e6) << "total " << total << " merged " << merged;
  EXPECT_GT(file_bytes, merged * 0.95);

  r = gemel(format("export --results {} --all --out {}", shellQuote(results),
                   shellQuote(dir.file("export"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;

  // Python: h5py reads the results; torchvision loads each export and gets eval's accuracy.
  const std::string script = R"PY(
import os, sys, h5py, numpy as np, torch, torchvision
results, export, dsdir = sys.argv[1:4]
f = h5py.File(results, "r")
assert f.attrs["format"] == "gemel-results", f.attrs["format"]
assert f.attrs["status"] == "done"
assert len(f["shared"]) > 0, "nothing shared"
for g in f["shared"].values():
    assert len(g.attrs["members"]) >= 2
# Every shared layer has the same values in the exports of every model that shares it.
exports = {t: torch.load(f"{export}/{t}.pt") for t in ("shoes_a_resnet18", "bags_b_resnet18")}
for g in f["shared"].values():
    members = [m.split(":") for m in g.attrs["members"]]
    for name in g:
        values = [exports[task][f"{module}.{name}"] for task, module in members]
        assert all(torch.equal(values[0], v) for v in values[1:]), (g.name, name)

# The one-file export: every model built with its tied weights (docs/export.md's lines), the
# resident memory it takes, and its tied tensors' storage.
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
merged_file = f"{export}/merged_workload.pt"
# Warm-up: the first torch.load and the first model built on the meta device import and set up
# code (about 4 MB here) that a real workload's hundreds of MB would not notice. Nothing large
# is allocated and freed, so the allocator has no freed memory to hand the weights below.
torch.save({"x": torch.zeros(1)}, f"{export}/warm.pt")
torch.load(f"{export}/warm.pt")
with torch.device("meta"):
    torchvision.models.resnet18(num_classes=3).load_state_dict(
        torchvision.models.resnet18(num_classes=3).state_dict(), assign=True)
before = resident()
workload = torch.load(merged_file)
merged = {}
for task, entry in workload["tasks"].items():
    with torch.device("meta"):
        merged[task] = torchvision.models.__dict__[entry["arch"]](num_classes=entry["num_classes"])
    merged[task].load_state_dict(entry["state_dict"], assign=True)
print("merged_file", os.path.getsize(merged_file), "resident", resident() - before)
for g in f["shared"].values():
    members = [m.split(":") for m in g.attrs["members"]]
    for name in g:
        ptrs = {merged[t].get_parameter(f"{module}.{name}").data_ptr() for t, module in members}
        assert len(ptrs) == 1, (g.name, name, "not stored once")
for task, stem in (("shoes_a_resnet18", "shoes_a"), ("bags_b_resnet18", "bags_b")):
    t = f["tasks"][task]
    m = torchvision.models.resnet18(num_classes=3)
    m.load_state_dict(torch.load(f"{export}/{task}.pt"))
    d = h5py.File(f"{dsdir}/{stem}_CL.h5", "r")
    x = torch.from_numpy(np.asarray(d["val/images"])).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(t.attrs["mean"]).view(1, -1, 1, 1).float()
    std = torch.tensor(t.attrs["std"]).view(1, -1, 1, 1).float()
    labels = torch.from_numpy(np.asarray(d["val/labels"]))
    acc = {}
    for source, model in (("export", m), ("merged", merged[task])):
        with torch.no_grad():
            pred = model.eval()((x - mean) / std).argmax(1)
        acc[source] = (pred == labels).float().mean().item()
    assert acc["export"] == acc["merged"], acc
    print(task, acc["export"])
)PY";
  writeText(dir.file("check.py"), script);
  r = run(shellQuote(GEMEL_PYTHON) + " " + shellQuote(dir.file("check.py")) + " " +
          shellQuote(results) + " " + shellQuote(dir.file("export")) + " " +
          shellQuote(dir.path()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("shoes_a_resnet18 ([0-9.]+)"))) << r.output;
  EXPECT_NEAR(std::stod(m[1]), shoes, 1.5 / 120) << r.output;  // within one image of 120
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("bags_b_resnet18 ([0-9.]+)"))) << r.output;
  EXPECT_NEAR(std::stod(m[1]), bags, 1.5 / 120) << r.output;
  // The one-file export takes the merged bytes on disk and in memory, not the unmerged ones.
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("merged_file ([0-9]+) resident ([0-9]+)")))
      << r.output;
  EXPECT_NEAR(std::stod(m[1]), merged, 0.05 * merged) << "total " << total;
  EXPECT_NEAR(std::stod(m[2]), merged, 0.05 * merged) << "total " << total;
  std::printf("merged bytes %.0f (unmerged %.0f): one-file export %s B, resident %s B\n", merged,
              total, m[1].str().c_str(), m[2].str().c_str());

  // Bad inputs: a file that is not a results file; an unknown task.
  r = gemel(format("eval --results {}", shellQuote(dir.file("shoes_a_CL.h5"))));
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("not a gemel results file"), std::string::npos) << r.output;
  r = gemel(format("export --results {} --task nope --out {}", shellQuote(results),
                   shellQuote(dir.file("x.pt"))));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_FALSE(fs::exists(dir.file("x.pt")));

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // (A figure, not a bound: speed is for the benchmarks; CI machines are shared.)
  RecordProperty("seconds", std::to_string(seconds));
  std::printf("train, merge, eval and export took %.1f s\n", seconds);
}

TEST(MergeCli, ADivergedTrialFailsAndKeepsTheAcceptedWeights) {
  TempDir dir;
  // Same workload, with a learning rate that makes the loss overflow at once.
  const auto diverge = editedCopy(dir, trainTiny(dir), "diverge.yaml", "lr: 0.05", "lr: 1e30");
  ASSERT_FALSE(::testing::Test::HasFailure());
  auto r = gemel(format("merge --config {} --out {} --max-trials 1 --fixed-steps 3",
                        shellQuote(diverge), shellQuote(dir.file("merged"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("failed (NaN)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("saved 0 B"), std::string::npos) << r.output;
  // The accepted state is the unmerged models, at their measured accuracy.
  r = gemel(format("eval --results {} --json", shellQuote(dir.file("merged/results.h5"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto json = r.output.substr(r.output.find('{'));
  EXPECT_NE(json.find("\"saved_bytes\":0"), std::string::npos) << json;
  for (const auto* task : {"shoes_a_resnet18", "bags_b_resnet18"}) {
    // (unmerged_acc went through the trained YAML, written with 10 significant digits)
    EXPECT_NEAR(jsonNumber(json, task, "score"), jsonNumber(json, task, "unmerged_score"), 1e-9)
        << task;
  }
}

// An interrupted merge resumed with --resume ends where an uninterrupted one does: the same
// trials, decisions and weights (the planner is replayed from the recorded outcomes, and each
// task's data stream and random draws pick up at the recorded position).
TEST(MergeCli, ResumeEndsWhereAnUninterruptedMergeEnds) {
  TempDir dir;
  const auto trained_path = trainTiny(dir);
  ASSERT_FALSE(::testing::Test::HasFailure());
  const auto trained = shellQuote(trained_path);
  // 4 steps a trial over a 10-batch epoch: the resumed stream starts inside an epoch.
  const std::string steps = "--fixed-steps 4";

  auto r = gemel(format("merge --config {} --out {} {} --resume", trained,
                        shellQuote(dir.file("part")), steps));
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("nothing to resume from"), std::string::npos) << r.output;

  r = gemel(format("merge --config {} --out {} {} --max-trials 3", trained,
                   shellQuote(dir.file("full")), steps));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = gemel(format("merge --config {} --out {} {} --max-trials 1", trained,
                   shellQuote(dir.file("part")), steps));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = gemel(format("merge --config {} --out {} {} --max-trials 3 --resume", trained,
                   shellQuote(dir.file("part")), steps));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("1 trials done"), std::string::npos) << r.output;

  r = run(shellQuote(GEMEL_PYTHON) + " " +
          shellQuote(std::string(GEMEL_SOURCE_DIR) + "/tests/support/same_results.py") + " " +
          shellQuote(dir.file("full/results.h5")) + " " + shellQuote(dir.file("part/results.h5")) +
          " 3");
  EXPECT_EQ(r.exit_code, 0) << r.output;

  // Another workload (a task renamed) cannot resume these results; they stay as they were.
  const auto other =
      editedCopy(dir, trained_path, "other.yaml", "name: bags_b_resnet18", "name: other_resnet18");
  const auto before = fs::last_write_time(dir.file("part/results.h5"));
  r = gemel(format("merge --config {} --out {} {} --resume", shellQuote(other),
                   shellQuote(dir.file("part")), steps));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("was written for the tasks"), std::string::npos) << r.output;
  EXPECT_EQ(fs::last_write_time(dir.file("part/results.h5")), before);
}

// The search as users run it, without --fixed-steps: at a search.lr that collapses the shared
// models it backs off (each retry at a quarter of the step), and a --time-budget ends it within
// the budget plus one step and one validation. Then the same run, killed mid-search and
// resumed, keeps what was recorded and ends within the same budget, counted over both runs.
void expectAdaptiveSearch(const std::string& output, const io::Results& results, double lr,
                          int budget) {
  int backed_off = 0;
  for (const auto& t : results.trials) {
    backed_off += t.backoffs > 0;
    // Every step the search takes is search.lr / 4^k: back-offs (this trial's, and the accepted
    // trials' before it) and second passes each take a quarter.
    const double used = t.lr > 0 ? t.lr : lr;
    const double k = std::log(lr / used) / std::log(4.0);
    EXPECT_NEAR(k, std::round(k), 1e-6) << "trial " << t.number << " lr " << used;
    EXPECT_GE(std::round(k), t.backoffs) << "trial " << t.number;
  }
  EXPECT_GE(backed_off, 1) << output;
  EXPECT_EQ(results.status, "done");
  EXPECT_NE(output.find(format("ended: the time budget ({} s) is spent", budget)),
            std::string::npos)
      << output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(output, m,
                                std::regex("search took ([0-9.]+) s; a step took ([0-9.]+) s, "
                                           "a validation at most ([0-9.]+) s")))
      << output;
  const double took = std::stod(m[1]), step = std::stod(m[2]), validation = std::stod(m[3]);
  // (0.5 s: the bookkeeping between trials, results.h5 written after each)
  EXPECT_LE(took, budget + step + validation + 0.5) << output;
  std::printf("search took %.2f s against a %d s budget (a step %.3f s, a validation %.3f s)\n",
              took, budget, step, validation);
}

TEST(MergeCli, AdaptiveSearchBacksOffAndEndsWithinItsTimeBudget) {
  TempDir dir;
  // Targets at 95% (the default) make every trial train; 100 epochs a trial outlast the budget.
  const auto steep =
      editedCopy(dir, editedCopy(dir, trainTiny(dir), "steep.yaml", "lr: 0.05", "lr: 3"),
                 "steep.yaml", "epochs_per_trial: 1", "epochs_per_trial: 100");
  writeText(steep, std::regex_replace(testing::readText(steep), std::regex("accuracy_target: 0.5"),
                                      "accuracy_target: 0.95"));
  ASSERT_FALSE(::testing::Test::HasFailure());
  const std::string merge = "OMP_NUM_THREADS=1 " + shellQuote(GEMEL_BINARY) + " merge --config " +
                            shellQuote(steep) + " --threads 1 --time-budget 20 --max-trials 100";
  auto r = run(merge + " --out " + shellQuote(dir.file("full")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expectAdaptiveSearch(r.output, io::readResults(dir.file("full/results.h5")), 3, 20);

  // Killed at its 40th training step (GEMEL_FAULT), then resumed.
  r = run("GEMEL_FAULT=0:40:kill " + merge + " --out " + shellQuote(dir.file("part")));
  ASSERT_NE(r.exit_code, 0) << "the fault did not kill the run\n" << r.output;
  const auto killed = io::readResults(dir.file("part/results.h5"));
  EXPECT_EQ(killed.status, "running");
  r = run(merge + " --resume --out " + shellQuote(dir.file("part")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto resumed = io::readResults(dir.file("part/results.h5"));
  ASSERT_GE(resumed.trials.size(), killed.trials.size());
  for (std::size_t i = 0; i < killed.trials.size(); ++i) {
    EXPECT_EQ(resumed.trials[i].label, killed.trials[i].label) << i;
    EXPECT_EQ(resumed.trials[i].decision, killed.trials[i].decision) << i;
  }
  expectAdaptiveSearch(r.output, resumed, 3, 20);
}

// gemel summary over a sweep's output root as slurm/sweep.sbatch leaves it: a finished member
// with its eval.json, one killed mid-search (status running), a directory without results.h5,
// a corrupt results.h5, and a listed config the sweep never ran. Each row says so; the exit code
// is 0 unless --require-complete; the CSV and the HTML page (with its plot) name every member.
TEST(SweepSummary, SaysRowByRowWhatFinishedWasCutShortFailedOrIsMissing) {
  TempDir dir;
  const auto trained = shellQuote(trainTiny(dir));
  ASSERT_FALSE(::testing::Test::HasFailure());
  const auto root = dir.file("sweep");
  auto r = gemel(format("merge --config {} --out {} --fixed-steps 2 --max-trials 1", trained,
                        shellQuote(root + "/ok")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run(format("{} eval --results {} --json > {}", shellQuote(GEMEL_BINARY),
                 shellQuote(root + "/ok/results.h5"), shellQuote(root + "/ok/eval.json")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Killed at its third step: trial 1 (2 steps) recorded, trial 2 in flight.
  r =
      run(format("GEMEL_FAULT=0:3:kill {} merge --config {} --out {} --fixed-steps 2 "
                 "--max-trials 3",
                 shellQuote(GEMEL_BINARY), trained, shellQuote(root + "/cut")));
  ASSERT_NE(r.exit_code, 0) << r.output;
  fs::create_directories(root + "/empty");
  fs::create_directories(root + "/broken");
  writeText(root + "/broken/results.h5", "not HDF5\n");
  writeText(dir.file("list.txt"), "configs/ok.yaml\nconfigs/cut.yaml\nconfigs/never.yaml\n");

  r = gemel(format("summary {} --list {}", shellQuote(root), shellQuote(dir.file("list.txt"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("1 of 5 workloads finished with every task at its target"),
            std::string::npos)
      << r.output;
  const auto csv = testing::readText(root + "/summary.csv");
  auto row = [&](const std::string& name) {
    const auto at = csv.find("\n" + name + ",");
    return at == std::string::npos ? std::string()
                                   : csv.substr(at + 1, csv.find('\n', at + 1) - at - 1);
  };
  EXPECT_EQ(row("ok").rfind("ok,finished,2,", 0), 0u) << csv;
  EXPECT_NE(row("ok").find(",yes,eval.json,1,0,0,0,1,"), std::string::npos) << csv;
  EXPECT_NE(row("ok").find("--max-trials 1 reached"), std::string::npos) << csv;
  EXPECT_EQ(row("cut").rfind("cut,cut short,2,", 0), 0u) << csv;
  EXPECT_NE(row("cut").find("--resume"), std::string::npos) << csv;
  EXPECT_EQ(row("empty").rfind("empty,missing,", 0), 0u) << csv;
  EXPECT_EQ(row("broken").rfind("broken,failed,", 0), 0u) << csv;
  EXPECT_NE(row("broken").find("broken/results.h5"), std::string::npos) << csv;
  EXPECT_EQ(row("never").rfind("never,missing,", 0), 0u) << csv;
  const auto page = testing::readText(root + "/summary.html");
  EXPECT_NE(page.find("<svg"), std::string::npos);
  for (const auto* name : {"ok", "cut", "empty", "broken", "never"}) {
    EXPECT_NE(page.find(format(">{}</text>", name)), std::string::npos) << name;
  }

  r = gemel(format("summary {} --require-complete", shellQuote(root)));
  EXPECT_EQ(r.exit_code, 5) << r.output;
  r = gemel(format("summary {} --out {} --require-complete", shellQuote(root + "/ok/results.h5"),
                   shellQuote(dir.file("one"))));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir.file("one/summary.html")));

  // The page as a browser draws it (headless Chromium, where installed).
  if (std::system("command -v chromium > /dev/null 2>&1") == 0) {
    const auto png = dir.file("summary.png");
    r =
        run(format("chromium --headless --no-sandbox --disable-gpu --hide-scrollbars "
                   "--window-size=1100,700 --screenshot={} file://{} 2>&1",
                   shellQuote(png), shellQuote(root + "/summary.html")));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    ASSERT_TRUE(fs::exists(png)) << r.output;
    EXPECT_GT(fs::file_size(png), 10000u) << "an empty page";
    if (const char* keep = std::getenv("GEMEL_KEEP_SCREENSHOT"))
      fs::copy_file(png, keep, fs::copy_options::overwrite_existing);
  }
}

// A workload whose models can share nothing gets one line that says so and why, before the
// merge measures anything, and still a results.h5 with the workload unmerged.
TEST(MergeCli, SaysWhenThereIsNothingToShare) {
  TempDir dir;
  const auto yaml =
      testing::writeOneTaskWorkload(dir, "alone.yaml", "name: alone\ndefaults: {batch_size: 32}\n",
                                    {"shoes_a_resnet18", {5, 7, 9}}, 64, 32);
  const auto r =
      gemel(format("merge --config {} --out {}", shellQuote(yaml), shellQuote(dir.file("out"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto said = r.output.find("nothing to share: the workload has a single task");
  ASSERT_NE(said, std::string::npos) << r.output;
  const auto measured = r.output.find("unmerged top1");
  ASSERT_NE(measured, std::string::npos) << r.output;
  EXPECT_LT(said, measured) << "said after measuring\n" << r.output;
  EXPECT_TRUE(fs::exists(dir.file("out/results.h5")));
}

}  // namespace
}  // namespace gemel
