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
  // A second task with every field away from its default, so that a writer that drops one is
  // caught (the reader would fall back to the default).
  TaskRecord d;
  d.name = "bags_yolov3tiny";
  d.arch = "yolov3-tiny";
  d.source = "/weights/bags.pt";
  d.dataset = "/data/bags_yolov3tiny_OD.h5";
  d.num_classes = 3;
  d.metric = "map";
  d.kind = "detection";
  d.image_size = 160;
  d.precision = "bf16";
  d.channels_last = true;
  d.unmerged_score = 0.61;
  d.target = 0.58;
  d.final_score = 0.6;
  d.mean = {0.1, 0.2, 0.3};
  d.std = {0.4, 0.5, 0.6};
  d.params.emplace_back("module_list.15.conv_15.bias", torch::tensor({1.5f, 2.5f, -3.0f}));
  r.tasks.push_back(d);
  TrialRecord trial;
  trial.number = 1;
  trial.label = "group 0 (1 layer x 2 models)";
  trial.decision = "rejected";
  trial.trained = {"cars_resnet18"};
  trial.scores = {0.81};
  r.trials.push_back(trial);
  // A second trial with every field a trial can have.
  TrialRecord full;
  full.number = 2;
  full.label = "group 1, second try";
  full.decision = "partial 2/3";
  full.models = {"cars_resnet18", "people_resnet18", "bikes_resnet18"};
  full.met = {"cars_resnet18", "bikes_resnet18"};
  full.trained = {"cars_resnet18", "people_resnet18", "bikes_resnet18"};
  full.scores = {0.86, 0.7, 0.91};
  full.ended = "task people_resnet18 cannot reach its target";
  full.dropped = {"people_resnet18"};
  full.checked = {"cars_resnet18", "people_resnet18"};
  full.check_scores = {0.87, 0.8};
  full.bytes_saved = 4096;
  full.steps = 120;
  full.seconds = 12.5;
  full.backoffs = 1;
  full.lr = 0.0025;
  r.trials.push_back(full);
  SharedRecord shared;
  shared.id = "g1_i0";
  shared.signature = "conv 64x64x3x3";
  shared.members = {"cars_resnet18:layer1.0.conv1", "bikes_resnet18:layer1.0.conv1"};
  shared.tensors.emplace_back("weight", torch::arange(12, torch::kFloat).view({2, 2, 3}));
  r.shared.push_back(shared);
  r.plan_json = "[[1,0,[0,2]]]";
  r.streams = {{17, 34}, {5, 9}};
  r.total_bytes = 123456789;
  r.possible_savings = 60;
  r.achieved_savings = 40;
  r.timeline.emplace_back(0.0, 100);
  r.timeline.emplace_back(12.5, 60);
  r.ended = "the time budget (90 s) is spent";
  r.search_seconds = 91.25;
  return r;
}

// Every field of every trial, the shared tensors and the search state read back as written.
TEST(Results, EveryRecordedFieldReadsBack) {
  gemel::testing::TempDir dir;
  const auto path = dir.file("results.h5");
  const auto written = sample();
  writeResults(path, written);
  const auto back = readResults(path);
  ASSERT_EQ(back.tasks.size(), written.tasks.size());
  for (std::size_t i = 0; i < written.tasks.size(); ++i) {
    const auto &w = written.tasks[i], &b = back.tasks[i];
    SCOPED_TRACE(w.name);
    EXPECT_EQ(b.name, w.name);
    EXPECT_EQ(b.arch, w.arch);
    EXPECT_EQ(b.source, w.source);
    EXPECT_EQ(b.dataset, w.dataset);
    EXPECT_EQ(b.num_classes, w.num_classes);
    EXPECT_EQ(b.metric, w.metric);
    EXPECT_EQ(b.kind, w.kind);
    EXPECT_EQ(b.image_size, w.image_size);
    EXPECT_EQ(b.precision, w.precision);
    EXPECT_EQ(b.channels_last, w.channels_last);
    EXPECT_DOUBLE_EQ(b.unmerged_score, w.unmerged_score);
    EXPECT_DOUBLE_EQ(b.target, w.target);
    EXPECT_DOUBLE_EQ(b.final_score, w.final_score);
    EXPECT_EQ(b.mean, w.mean);
    EXPECT_EQ(b.std, w.std);
    ASSERT_EQ(b.params.size(), w.params.size());
    for (std::size_t k = 0; k < w.params.size(); ++k) {
      EXPECT_EQ(b.params[k].first, w.params[k].first);
      EXPECT_TRUE(torch::equal(b.params[k].second, w.params[k].second));
    }
  }
  EXPECT_EQ(back.workload_path, written.workload_path);
  EXPECT_EQ(back.total_bytes, written.total_bytes);
  EXPECT_EQ(back.ended, written.ended);
  EXPECT_DOUBLE_EQ(back.search_seconds, written.search_seconds);
  // Without the tensors (gemel summary): the same record, no weights.
  const auto light = readResults(path, false);
  EXPECT_EQ(light.trials.size(), written.trials.size());
  EXPECT_EQ(light.ended, written.ended);
  EXPECT_TRUE(light.tasks.at(0).params.empty());
  EXPECT_TRUE(light.shared.at(0).tensors.empty());
  ASSERT_EQ(back.trials.size(), written.trials.size());
  for (std::size_t i = 0; i < written.trials.size(); ++i) {
    const auto &w = written.trials[i], &b = back.trials[i];
    EXPECT_EQ(b.number, w.number);
    EXPECT_EQ(b.label, w.label);
    EXPECT_EQ(b.decision, w.decision);
    EXPECT_EQ(b.models, w.models);
    EXPECT_EQ(b.met, w.met);
    EXPECT_EQ(b.trained, w.trained);
    EXPECT_EQ(b.scores, w.scores);
    EXPECT_EQ(b.ended, w.ended);
    EXPECT_EQ(b.dropped, w.dropped);
    EXPECT_EQ(b.checked, w.checked);
    EXPECT_EQ(b.check_scores, w.check_scores);
    EXPECT_EQ(b.bytes_saved, w.bytes_saved);
    EXPECT_EQ(b.steps, w.steps);
    EXPECT_DOUBLE_EQ(b.seconds, w.seconds);
    EXPECT_EQ(b.backoffs, w.backoffs);
    EXPECT_DOUBLE_EQ(b.lr, w.lr);
  }
  ASSERT_EQ(back.shared.size(), 1u);
  EXPECT_EQ(back.shared[0].id, "g1_i0");
  EXPECT_EQ(back.shared[0].signature, written.shared[0].signature);
  EXPECT_EQ(back.shared[0].members, written.shared[0].members);
  ASSERT_EQ(back.shared[0].tensors.size(), 1u);
  EXPECT_TRUE(torch::equal(back.shared[0].tensors[0].second, written.shared[0].tensors[0].second));
  EXPECT_EQ(back.plan_json, written.plan_json);
  EXPECT_EQ(back.streams, written.streams);
  EXPECT_EQ(back.status, "done");
  EXPECT_EQ(back.workload_yaml, written.workload_yaml);
  EXPECT_EQ(back.possible_savings, 60);
  EXPECT_EQ(back.achieved_savings, 40);
  EXPECT_EQ(back.timeline, written.timeline);
}

TEST(Results, RoundTripsAndReadsVersionOneFiles) {
  gemel::testing::TempDir dir;
  const auto path = dir.file("results.h5");
  writeResults(path, sample());
  const auto back = readResults(path);
  ASSERT_EQ(back.tasks.size(), 2u);
  EXPECT_EQ(back.tasks[0].metric, "top1");
  EXPECT_DOUBLE_EQ(back.tasks[0].unmerged_score, 0.9);
  EXPECT_DOUBLE_EQ(back.tasks[0].target, 0.855);
  EXPECT_DOUBLE_EQ(back.tasks[0].final_score, 0.87);
  ASSERT_EQ(back.trials.size(), 2u);
  EXPECT_EQ(back.trials[0].scores, std::vector<double>{0.81});
  EXPECT_TRUE(torch::equal(back.tasks[0].params[0].second, torch::tensor({0.5f, -0.5f})));

  // h5py reads the metric; then it rewrites the file as version 1 wrote it.
  const auto r = run(shellQuote(GEMEL_PYTHON) + " -c " + shellQuote(R"PY(
import sys, h5py
with h5py.File(sys.argv[1], "r+", libver=("v110", "latest")) as f:
    assert f["tasks/cars_resnet18"].attrs["metric"] == "top1"
    assert f.attrs["version"] == 2
    f.attrs["version"] = 1
    for t in f["tasks"].values():
        for new, old in (("unmerged_score", "unmerged_acc"), ("final_score", "final_acc")):
            t.attrs[old] = t.attrs[new]
            del t.attrs[new]
        del t.attrs["metric"]
    for g in f["search/trials"].values():
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
