// From a merge to an edge plan, as a user runs it: gemel profile measures the merged tasks on
// the CPU, gemel simulate schedules them over memory budgets, gemel report draws one HTML page
// of it all, and headless Chromium (Debian's chromium) renders that page to a screenshot.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <regex>

#include "cli_support.h"
#include "fashion_workload.h"
#include "gemel/core/format.h"
#include "test_support.h"

namespace gemel {
namespace {

namespace fs = std::filesystem;
using testing::gemel;
using testing::run;
using testing::shellQuote;
using testing::TempDir;
using testing::writeText;

// Two resnet18 cameras, trained for one epoch; `lr` is the search's learning rate.
std::string trainedPair(const std::string& dir, const std::string& lr) {
  testing::FashionWorkload w;
  w.header =
      "name: pair\n"
      "defaults: {batch_size: 32, accuracy_target: 0.5}\n"
      "search: {strategy: greedy, epochs_per_trial: 1, lr: " +
      lr + ", max_trials: 2}\n";
  w.tasks = {{"shoes_a_resnet18", {5, 7, 9}}, {"bags_b_resnet18", {8, 1, 3}}};
  w.max_train = 256;
  w.max_val = 96;
  w.task_extra = ", transforms: {mean: [0.3, 0.3, 0.3], std: [0.35, 0.35, 0.35]}";
  const auto yaml = testing::writeFashionWorkload(dir, "pair.yaml", w);
  const auto r = gemel(format("train --config {} --epochs 1 --out {}", shellQuote(yaml),
                              shellQuote(dir + "/trained")));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return dir + "/trained/pair.trained.yaml";
}

testing::CommandResult python(const TempDir& dir, const std::string& script,
                              const std::string& args) {
  writeText(dir.file("check.py"), script);
  return run(shellQuote(GEMEL_PYTHON) + " " + shellQuote(dir.file("check.py")) + " " + args);
}

// One merge, profiled, made once per build and shared by the tests below (training it is most
// of the cost); each test works in a directory of its own that sees those files.
bool makeProfiledMerge(const std::string& dir) {
  const auto trained = trainedPair(dir, "0.05");
  auto r = gemel(format("merge --config {} --out {} --fixed-steps 6", shellQuote(trained),
                        shellQuote(dir + "/merged")));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  if (r.exit_code != 0) return false;
  r =
      gemel(format("profile --results {}/merged/results.h5 --device cpu --batch 1,2,4 --repeats 5 "
                   "--load-repeats 3 --out {}/P.h5",
                   shellQuote(dir), shellQuote(dir)));
  writeText(dir + "/profile.log", r.output);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.exit_code == 0;
}

class EdgeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto shared = testing::sharedTestDir("edge", GEMEL_BINARY, makeProfiledMerge);
    ASSERT_FALSE(shared.empty()) << "the shared merge failed";
    testing::linkEntries(shared, own_.path());
    profile_output_ = testing::readText(own_.file("profile.log"));
  }
  std::string results() const { return own_.file("merged/results.h5"); }
  std::string profile() const { return own_.file("P.h5"); }
  TempDir own_;
  std::string profile_output_;
};

// The resident bytes of the merged set, measured, are below the unmerged set's by what the
// merge saved (within 5%), and h5py reads every table.
TEST_F(EdgeCli, ProfileMeasuresTheSavedBytesOnTheCpu) {
  const auto r = python(own_, R"PY(
import sys, h5py
f = h5py.File(sys.argv[1], "r")
assert f.attrs["format"] == "gemel-profile"
assert f.attrs["memory_measure"] == "rss", f.attrs["memory_measure"]
tasks = list(f.attrs["tasks"])
assert len(tasks) == 2, tasks
for t in tasks:
    g = f["tasks"][t]
    assert list(g["batch_sizes"][()]) == [1, 2, 4]
    assert (g["latency_median"][()] > 0).all() and (g["latency_p95"][()] >= g["latency_median"][()]).all()
    assert g.attrs["resident_bytes"] > 0.9 * g.attrs["weight_bytes"], dict(g.attrs)
    assert g.attrs["load_seconds"] > 0
assert f["pairs/load_seconds"].shape == (2, 2) and f["pairs/bytes"].shape == (2, 2)
# A sharing partner already resident: loading the other adds fewer bytes than loading it alone.
b = f["pairs/bytes"][()]
assert b[0, 1] < b[1, 1] and b[1, 0] < b[0, 0], b
print("saved", f.attrs["saved_bytes"], "measured", f.attrs["unmerged_set_bytes"] - f.attrs["merged_set_bytes"])
)PY",
                        shellQuote(profile()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("saved ([0-9]+) measured (-?[0-9]+)")))
      << r.output;
  const double saved = std::stod(m[1]), measured = std::stod(m[2]);
  ASSERT_GT(saved, 1e6) << "the merge should have shared at least one layer\n" << profile_output_;
  EXPECT_NEAR(measured, saved, 0.05 * saved) << profile_output_;
}

// Where the unmerged set does not fit, the merged one processes more frames; where everything
// fits, both process the same frames. (Which frames a CPU keeps up with depends on the
// latencies profile measured, so on how busy the machine was: the checks compare the modes.)
struct SimRun {
  double processed = 0, loads = 0;
};
std::map<std::string, std::vector<SimRun>> simulateRuns(const std::string& json) {
  std::map<std::string, std::vector<SimRun>> out;  // mode -> per budget, in budget order
  std::regex run_re(
      "\"mode\":\"([a-z-]+)\",\"memory_bytes\":[0-9]+,\"processed\":([0-9]+),"
      "\"skipped\":[0-9]+,\"within_sla\":[0-9]+,\"loads\":([0-9]+)");
  for (std::sregex_iterator it(json.begin(), json.end(), run_re), end; it != end; ++it)
    out[(*it)[1]].push_back({std::stod((*it)[2]), std::stod((*it)[3])});
  return out;
}

TEST_F(EdgeCli, SimulateMergedProcessesMoreFramesWhereUnmergedDoesNotFit) {
  // The cameras' frame rate from what profile measured: 1.5 times what swapping the two models
  // in and out can serve (a load and a batch of 4 per camera in turn). At a fixed 30 fps a
  // machine that loads 43 MiB in 24 ms keeps up while swapping, and the comparison below has
  // nothing to compare.
  auto r = python(own_, R"PY(
import sys, h5py
f = h5py.File(sys.argv[1], "r")
cycle = 0.0
for t in f["tasks"].values():
    sizes = list(t["batch_sizes"][()])
    cycle += t.attrs["load_seconds"] + t["latency_median"][()][sizes.index(4)]
print("fps", int(1.5 * 4 / cycle) + 1)
)PY",
                  shellQuote(profile()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::smatch fps;
  ASSERT_TRUE(std::regex_search(r.output, fps, std::regex("fps ([0-9]+)"))) << r.output;
  r = gemel(format("simulate --results {} --profile {} --frames 600 --fps {} --json --out {}",
                   shellQuote(results()), shellQuote(profile()), fps[1].str(),
                   shellQuote(own_.file("S.h5"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto json = r.output.substr(r.output.find('{'));
  auto runs = simulateRuns(json);
  const auto& merged = runs["merged"];
  const auto& unmerged = runs["unmerged"];
  ASSERT_EQ(merged.size(), unmerged.size()) << json;
  ASSERT_GE(merged.size(), 4u) << json;
  // Budgets where the merged set is resident without a swap and the unmerged one is not:
  // merged processes at least as many frames there, and more at one of them at least.
  int both = 0, more = 0;
  for (std::size_t i = 0; i < merged.size(); ++i) {
    if (merged[i].loads != 0 || unmerged[i].loads == 0) continue;
    ++both;
    EXPECT_GE(merged[i].processed, unmerged[i].processed) << "budget " << i << "\n" << json;
    if (merged[i].processed > unmerged[i].processed) ++more;
  }
  EXPECT_GE(both, 1) << "no budget holds the merged set but not the unmerged one\n" << json;
  EXPECT_GE(more, 1) << json << "\n" << profile_output_;

  // A budget far above everything: nothing swaps, and both process the same frames.
  r = gemel(format("simulate --results {} --profile {} --frames 600 --json --memory 4GiB",
                   shellQuote(results()), shellQuote(profile())));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  json = r.output.substr(r.output.find('{'));
  runs = simulateRuns(json);
  ASSERT_EQ(runs["merged"].size(), 1u) << json;
  ASSERT_EQ(runs["unmerged"].size(), 1u) << json;
  EXPECT_EQ(runs["merged"][0].loads, 0) << json;
  EXPECT_EQ(runs["unmerged"][0].loads, 0) << json;
  EXPECT_EQ(runs["merged"][0].processed, runs["unmerged"][0].processed) << json;
  EXPECT_GT(runs["merged"][0].processed, 0) << json;

  const auto py = python(own_, R"PY(
import sys, h5py
f = h5py.File(sys.argv[1], "r")
assert f.attrs["format"] == "gemel-simulation"
n = len(f["memory_bytes"])
for m in ("merged", "unmerged", "no-swap-cost"):
    for k in ("processed", "skipped", "within_sla", "loads", "load_seconds"):
        assert f[m][k].shape == (n,), (m, k)
    assert f[m]["stream_processed"].shape == (n, 2)
assert f["merged"].attrs["all_resident_bytes"] < f["unmerged"].attrs["all_resident_bytes"]
print("ok")
)PY",
                         shellQuote(own_.file("S.h5")));
  EXPECT_EQ(py.exit_code, 0) << py.output;
}

// Each bad input is one clear error and a non-zero exit.
TEST_F(EdgeCli, BadInputsAreOneClearError) {
  // A budget below the largest single model.
  auto r = gemel(format("simulate --results {} --profile {} --memory 8MiB", shellQuote(results()),
                        shellQuote(profile())));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("is below what model"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("give budgets of at least"), std::string::npos) << r.output;

  // A profile of other tasks: the same file with its tasks renamed.
  auto py = python(own_, R"PY(
import sys, shutil, h5py
shutil.copy(sys.argv[1], sys.argv[2])
f = h5py.File(sys.argv[2], "r+", libver=("v110", "latest"))
names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["tasks"]]
for n in names:
    f["tasks"].move(n, "other_" + n)
f.attrs["tasks"] = ["other_" + n for n in names]
f.close()
)PY",
                   shellQuote(profile()) + " " + shellQuote(own_.file("other.h5")));
  ASSERT_EQ(py.exit_code, 0) << py.output;
  r = gemel(format("simulate --results {} --profile {}", shellQuote(results()),
                   shellQuote(own_.file("other.h5"))));
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("a profile of other tasks"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("other.h5"), std::string::npos) << r.output;

  // A profile that is not one.
  r = gemel(
      format("simulate --results {} --profile {}", shellQuote(results()), shellQuote(results())));
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("not a gemel profile"), std::string::npos) << r.output;

  // A results file without a merge: the only trial diverges, nothing is shared.
  // (the trained workload with the search's learning rate raised, beside it so that its
  // relative weight paths hold)
  TempDir nomerge;
  auto yaml = testing::readText(own_.file("trained/pair.trained.yaml"));
  const auto at = yaml.find("lr: 0.05");
  ASSERT_NE(at, std::string::npos) << yaml;
  yaml.replace(at, 8, "lr: 1e30");
  writeText(own_.file("trained/diverge.yaml"), yaml);
  r = gemel(format("merge --config {} --out {} --max-trials 1 --fixed-steps 3",
                   shellQuote(own_.file("trained/diverge.yaml")),
                   shellQuote(nomerge.file("merged"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto none = nomerge.file("merged/results.h5");
  for (const auto* cmd : {"simulate", "report"}) {
    r = gemel(format("{} --results {} --profile {} --out {}", cmd, shellQuote(none),
                     shellQuote(profile()), shellQuote(nomerge.file("out"))));
    EXPECT_EQ(r.exit_code, 4) << cmd << "\n" << r.output;
    EXPECT_NE(r.output.find("holds no merge"), std::string::npos) << cmd << "\n" << r.output;
    EXPECT_FALSE(fs::exists(nomerge.file("out"))) << cmd;
  }
}

// The report holds every section and figure, and a real browser renders all of them.
TEST_F(EdgeCli, ReportRendersEverySectionInChromium) {
  const auto sim = own_.file("S_report.h5");
  auto r = gemel(format("simulate --results {} --profile {} --frames 300 --out {}",
                        shellQuote(results()), shellQuote(profile()), shellQuote(sim)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto page = own_.file("report.html");
  r = gemel(format("report --results {} --profile {} --simulation {} --out {}",
                   shellQuote(results()), shellQuote(profile()), shellQuote(sim),
                   shellQuote(page)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("6 sections, 6 figures"), std::string::npos) << r.output;
  ASSERT_TRUE(fs::exists(page));
  // Self-contained: nothing is fetched from anywhere.
  const auto html = testing::readText(page);
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);

  const std::string chromium =
      "timeout 120 chromium --headless --no-sandbox --disable-gpu "
      "--hide-scrollbars --virtual-time-budget=10000 ";
  const auto url = "file://" + fs::absolute(page).string();
  r = run(chromium + "--dump-dom " + shellQuote(url) + " 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("figures rendered: 6 of 6"), std::string::npos)
      << r.output.substr(0, 2000);
  for (const auto* s : {"workload", "timeline", "scores", "sharing", "profile", "simulation"})
    EXPECT_NE(r.output.find(format("<section id=\"{}\"", s)), std::string::npos) << s;
  for (const auto* t : {"shoes_a_resnet18", "bags_b_resnet18"})
    EXPECT_NE(r.output.find(t), std::string::npos) << t;

  const auto shot = own_.file("report.png");
  r = run(chromium + "--window-size=1280,5000 --screenshot=" + shellQuote(shot) + " " +
          shellQuote(url) + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The screenshot is the page drawn: large, and far from blank (figures cover much of it).
  const auto py = python(own_, R"PY(
import sys
import numpy as np
from PIL import Image
im = np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(int)
h, w, _ = im.shape
rows = (np.abs(im - 255).sum(axis=2) > 30).any(axis=1)
colour = ((im.max(axis=2) - im.min(axis=2)) > 60).mean()
print(f"size {w}x{h} inked rows {rows.mean():.3f} coloured {colour:.4f}")
assert (w, h) == (1280, 5000)
assert rows.mean() > 0.5, rows.mean()
assert colour > 0.01, colour
)PY",
                         shellQuote(shot));
  EXPECT_EQ(py.exit_code, 0) << py.output;
  if (const char* keep = std::getenv("GEMEL_KEEP_REPORT")) {
    fs::copy_file(shot, std::string(keep) + ".png", fs::copy_options::overwrite_existing);
    fs::copy_file(page, std::string(keep) + ".html", fs::copy_options::overwrite_existing);
  }
}

}  // namespace
}  // namespace gemel
