// results.h5: what is written reads back the same; a version-1 file (scores called accuracies)
// is still read; h5py sees the metric that names each task's score.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gemel/io/results.h"
#include "test_support.h"

namespace gemel::io {
namespace {

using gemel::testing::run;
using gemel::testing::shellQuote;

Results sample() {
  Results r;
  r.workload_yaml = "name: sample\n";
  r.workload_path = "/somewhere/sample.yaml";
  r.status = "done";
  TaskRecord t;
  t.name = "cars_resnet18";
  t.arch = "resnet18";
  t.dataset = "/data/cars_CL.h5";
  t.num_classes = 2;
  t.unmerged_score = 0.9;
  t.target = 0.855;
  t.final_score = 0.87;
  t.mean = {0.5, 0.5, 0.5};
  t.std = {0.25, 0.25, 0.25};
  t.params.emplace_back("fc.bias", torch::tensor({0.5f, -0.5f}));
  r.tasks.push_back(t);
  TrialRecord trial;
  trial.number = 1;
  trial.label = "group 0 (1 layer x 2 models)";
  trial.decision = "rejected";
  trial.trained = {"cars_resnet18"};
  trial.scores = {0.81};
  r.trials.push_back(trial);
  r.total_bytes = 100;
  r.timeline.emplace_back(0.0, 100);
  return r;
}

TEST(Results, RoundTripsAndReadsVersionOneFiles) {
  gemel::testing::TempDir dir;
  const auto path = dir.file("results.h5");
  writeResults(path, sample());
  const auto back = readResults(path);
  ASSERT_EQ(back.tasks.size(), 1u);
  EXPECT_EQ(back.tasks[0].metric, "top1");
  EXPECT_DOUBLE_EQ(back.tasks[0].unmerged_score, 0.9);
  EXPECT_DOUBLE_EQ(back.tasks[0].target, 0.855);
  EXPECT_DOUBLE_EQ(back.tasks[0].final_score, 0.87);
  ASSERT_EQ(back.trials.size(), 1u);
  EXPECT_EQ(back.trials[0].scores, std::vector<double>{0.81});
  EXPECT_TRUE(torch::equal(back.tasks[0].params[0].second, torch::tensor({0.5f, -0.5f})));

  // h5py reads the metric; then it rewrites the file as version 1 wrote it.
  const auto r = run(shellQuote(GEMEL_PYTHON) + " -c " + shellQuote(R"PY(
import sys, h5py
with h5py.File(sys.argv[1], "r+", libver=("v110", "latest")) as f:
    t = f["tasks/cars_resnet18"]
    assert t.attrs["metric"] == "top1", t.attrs["metric"]
    assert f.attrs["version"] == 2
    f.attrs["version"] = 1
    for new, old in (("unmerged_score", "unmerged_acc"), ("final_score", "final_acc")):
        t.attrs[old] = t.attrs[new]
        del t.attrs[new]
    del t.attrs["metric"]
    g = f["search/trials/0001"]
    g.attrs["accuracy"] = g.attrs["scores"]
    del g.attrs["scores"]
)PY") + " " + shellQuote(path));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto old = readResults(path);
  EXPECT_EQ(old.tasks[0].metric, "top1");
  EXPECT_DOUBLE_EQ(old.tasks[0].unmerged_score, 0.9);
  EXPECT_DOUBLE_EQ(old.tasks[0].final_score, 0.87);
  EXPECT_EQ(old.trials[0].scores, std::vector<double>{0.81});
}

}  // namespace
}  // namespace gemel::io
