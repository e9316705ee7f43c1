// Detection end to end, as a user runs it: a yolov3-tiny camera (bags and sneakers on vtest.avi
// frames) beside a ResNet classifier, through gemel train -> merge -> eval -> export; then
// PyTorch-YOLOv3 loads the exported detector and pycocotools must measure the mAP@0.5 that
// gemel eval printed.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <regex>

#include "cli_support.h"
#include "detection_support.h"
#include "fashion_workload.h"
#include "gemel/core/format.h"
#include "gemel/data/dataset.h"
#include "gemel/data/sources.h"
#include "gemel/io/results.h"
#include "gemel/models/state_dict.h"
#include "test_support.h"

namespace gemel {
namespace {

namespace fs = std::filesystem;
using testing::run;
using testing::shellQuote;
using testing::TempDir;

using testing::gemel;
using testing::jsonNumber;
using testing::writeValData;

// The merge of `trained_yaml` (written by gemel train) under mpirun -np 3, with the unmerged
// scores left out so that the merge measures them again: the detector (the costlier task) gets
// two replicas, each validating half of the val images, and the unmerged mAP from their
// gathered records is the one `gemel train` measured in one process.
void expectReplicasGatherTheUnmergedScore(const TempDir& dir, const std::string& trained_yaml,
                                          const std::string& detector) {
  const auto text = testing::readText(trained_yaml);
  std::smatch u;
  const auto task_text = text.substr(text.find("name: " + detector));
  ASSERT_TRUE(std::regex_search(task_text, u, std::regex("unmerged_acc: ([0-9.eE+-]+)"))) << text;
  const double single = std::stod(u[1]);
  testing::writeText(dir.file("remeasure.yaml"),
                     std::regex_replace(text, std::regex("\\n *unmerged_acc: [^\\n]*"), ""));
  auto r = run(testing::mpirunPrefix(3) + shellQuote(GEMEL_BINARY) +
               format(" merge --config {} --out {} --fixed-steps 2 --max-trials 1",
                      shellQuote(dir.file("remeasure.yaml")), shellQuote(dir.file("mpi3"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(detector + " (replica 2/2)"), std::string::npos) << r.output;
  // Every val image scored once over the two replicas.
  const auto val = data::DatasetReader(dir.file(detector + "_OD.h5")).size("val");
  EXPECT_NE(r.output.find(format("{}: scored {} of {} val images", detector, val, val)),
            std::string::npos)
      << r.output;
  r = gemel(format("eval --results {} --json", shellQuote(dir.file("mpi3/results.h5"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto json = r.output.substr(r.output.find('{'));
  // The same images and weights; only the reduction order over ranks differs.
  EXPECT_NEAR(jsonNumber(json, detector, "unmerged_score"), single, 1e-2 * single) << r.output;
}

// The detector `gemel train` trained detects: the val mAP@0.5 of its row in the table (task,
// arch, epochs, seconds, held-out, val, metric) is well above chance (about 0) before anything
// is merged.
void expectItDetects(const std::string& output, const std::string& task, const std::string& arch) {
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      output, m, std::regex(task + " +" + arch + " +[0-9.]+ +[0-9.]+ +[0-9.]+ +([0-9.]+) map50")))
      << output;
  ASSERT_GE(std::stod(m[1]), 0.3) << "the detector does not detect\n" << output;
}

// What a reference scorer printed with gemel's own detections file (`gemel eval
// --detections`): the same number of detections on every val image, and pycocotools reads
// gemel's file to the mAP gemel printed.
void expectSameDetections(const std::string& output, double map50) {
  std::smatch m;
  ASSERT_TRUE(std::regex_search(output, m, std::regex("\"detections\": ([0-9]+)"))) << output;
  EXPECT_GT(std::stoi(m[1]), 0) << "the reference found nothing\n" << output;
  ASSERT_TRUE(std::regex_search(output, m, std::regex("\"count_differs\": ([0-9]+)"))) << output;
  EXPECT_EQ(std::stoi(m[1]), 0) << "images whose detection counts differ\n" << output;
  ASSERT_TRUE(std::regex_search(output, m, std::regex("\"gemel_file_map50\": ([0-9.eE+-]+)")))
      << output;
  EXPECT_NEAR(std::stod(m[1]), map50, 1e-4) << output;
}

TEST(DetectionCli, MixedWorkloadTrainsMergesEvaluatesAndExportsForPytorchyolo) {
  if (!data::haveOpenCV() || !fs::exists(std::string(data::kOpenCVDataDir) + "/vtest.avi")) {
    GTEST_SKIP() << "needs OpenCV and opencv-doc's vtest.avi";
  }
  TempDir dir;
  // Objects a third to a half of the 128 px side: yolov3-tiny's anchors and strides see them,
  // and it learns them in a few epochs (the demo's camera, with fewer images). At 96 px and 500
  // images, 12 epochs measured 0.255 to 0.34 over thread counts: too close to the floor.
  const data::BagsCameraOptions camera{128, 700, 150, 0.3, 0.5, 2};  // px, images, items
  data::buildBagsCamera(dir.file("bags_yolov3tiny_OD.h5"), data::kFashionMnistDir,
                        std::string(data::kOpenCVDataDir) + "/vtest.avi", camera);
  testing::FashionWorkload w;
  // fp32: pytorchyolo scores the export in fp32, and gemel eval scores in the precision the
  // merge trained in, so the two mAPs agree to 1e-4 only when that is fp32 too (bf16 autocast
  // moves box scores enough to shift mAP@0.5 by about 1e-3; bf16 training is tested elsewhere).
  w.header =
      "name: mixed\n"
      "precision: fp32\n"
      "defaults: {batch_size: 32, accuracy_target: 0.5}\n"
      "search: {strategy: greedy, epochs_per_trial: 1, lr: 0.02, max_trials: 2}\n";
  w.tasks = {{"shoes_a_resnet18", {5, 7, 9}}};
  w.task_extra = ", transforms: {mean: [0.3, 0.3, 0.3], std: [0.35, 0.35, 0.35]}";
  const auto yaml = testing::writeFashionWorkload(dir, "mixed.yaml", w);
  testing::writeText(yaml, testing::readText(yaml) +
                               "  - {name: bags_yolov3tiny, arch: yolov3-tiny, kind: detection, "
                               "num_classes: 2, image_size: 128, batch_size: 16, transforms: "
                               "{mean: [0, 0, 0], std: [1, 1, 1], scale_jitter: 0.1}}\n");
  auto r = gemel(format("train --config {} --epochs 12 --out {}", shellQuote(yaml),
                        shellQuote(dir.file("trained"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expectItDetects(r.output, "bags_yolov3tiny", "yolov3-tiny");
  if (::testing::Test::HasFatalFailure()) return;

  r = gemel(format("merge --config {} --out {} --fixed-steps 8",
                   shellQuote(dir.file("trained/mixed.trained.yaml")),
                   shellQuote(dir.file("merged"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("map50"), std::string::npos) << r.output;
  const auto results = dir.file("merged/results.h5");
  r = gemel(format("eval --results {} --json --detections {}", shellQuote(results),
                   shellQuote(dir.file("detections"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto json = r.output.substr(r.output.find('{'));
  EXPECT_NE(json.find("\"metric\":\"map50\""), std::string::npos) << json;
  const double map50 = jsonNumber(json, "bags_yolov3tiny", "score");
  // It detects (chance is about 0), and the merge kept its target.
  EXPECT_GE(jsonNumber(json, "bags_yolov3tiny", "unmerged_score"), 0.3) << json;
  EXPECT_GE(map50, jsonNumber(json, "bags_yolov3tiny", "target")) << json;

  r = gemel(format("export --results {} --task bags_yolov3tiny --out {}", shellQuote(results),
                   shellQuote(dir.file("bags.pt"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(fs::exists(dir.file("bags.cfg")));
  ASSERT_TRUE(fs::exists(dir.file("bags.weights")));
  writeValData(dir.file("bags_yolov3tiny_OD.h5"), dir.file("val.pt"));
  r = run(format("{} {} score {} {} {} {}", shellQuote(GEMEL_PYTHON),
                 shellQuote(std::string(GEMEL_SOURCE_DIR) + "/tests/models/yolo_ref.py"),
                 shellQuote(dir.file("bags.cfg")), shellQuote(dir.file("bags.pt")),
                 shellQuote(dir.file("val.pt")),
                 shellQuote(dir.file("detections/bags_yolov3tiny.json"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("\"map50\": ([0-9.eE+-]+)"))) << r.output;
  EXPECT_NEAR(std::stod(m[1]), map50, 1e-4) << r.output;
  expectSameDetections(r.output, map50);
  // The export detects too: the merged detector is held to half its unmerged score here.
  EXPECT_GT(std::stod(m[1]), 0.15) << r.output;
  std::printf(
      "unmerged mAP@0.5 %.6f, gemel eval %.6f; pytorchyolo + pycocotools on the export: %s\n",
      jsonNumber(json, "bags_yolov3tiny", "unmerged_score"), map50, r.output.c_str());

  // Under mpirun -np 3 the detector has two replicas, each validating half of the val images.
  expectReplicasGatherTheUnmergedScore(dir, dir.file("trained/mixed.trained.yaml"),
                                       "bags_yolov3tiny");
}

// A Faster R-CNN camera over ResNet-18 (the original Gemel's plain-backbone build) beside a
// ResNet-18 classifier, as a user runs them: gemel train -> merge -> eval -> export. The
// detector's body starts from the trained classifier (weights_backbone), as torchvision's
// detectors start from an ImageNet classifier; the merge then shares backbone convolutions
// between the two; torchvision's FasterRCNN loads the exported detector strictly and, scored
// with pycocotools on the val set, gets the mAP and the per-image detections of gemel eval.
TEST(RcnnCli, FasterRcnnBesideAClassifierMergesAndExportsForTorchvision) {
  if (!data::haveOpenCV() || !fs::exists(std::string(data::kOpenCVDataDir) + "/vtest.avi")) {
    GTEST_SKIP() << "needs OpenCV and opencv-doc's vtest.avi";
  }
  TempDir dir;
  // The second example's camera (configs/examples/rcnn_street.yaml) with half its images: one
  // item of 40-70% of the 96 px side, which ResNet-18's stride-32 map and torchvision's 32-512
  // px anchors see.
  const data::BagsCameraOptions camera{96, 600, 150, 0.4, 0.7, 1};  // px, images, items
  data::buildBagsCamera(dir.file("bags_rcnn_OD.h5"), data::kFashionMnistDir,
                        std::string(data::kOpenCVDataDir) + "/vtest.avi", camera);
  // First the classifier (bags, T-shirts, trousers and sneakers at 32 px).
  const std::string header =
      "name: mixed\n"
      "precision: fp32\n"
      "defaults: {batch_size: 64, accuracy_target: 0.5}\n"
      "search: {strategy: greedy, epochs_per_trial: 1, lr: 0.002, max_trials: 2}\n";
  testing::FashionWorkload w;
  w.header = header;
  w.tasks = {{"carry_a_resnet18", {8, 0, 1, 7}}};
  w.size = 32;
  w.max_train = 1024;
  w.max_val = 200;
  w.task_extra = ", transforms: {mean: [0.3, 0.3, 0.3], std: [0.35, 0.35, 0.35]}";
  const auto classifier_yaml = testing::writeFashionWorkload(dir, "classifier.yaml", w);
  auto r = gemel(format("train --config {} --epochs 6 --out {}", shellQuote(classifier_yaml),
                        shellQuote(dir.file("classifier"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto classifier = dir.file("classifier/carry_a_resnet18.pt");
  // Then both, the detector's body from the classifier. torchvision's training sampling,
  // smaller (docs/detectors.md): 16 RoIs per image make a step 2.4x cheaper than 64 here.
  const auto yaml = dir.file("mixed.yaml");
  testing::writeText(
      yaml,
      testing::readText(classifier_yaml) +
          "  - {name: bags_rcnn, arch: 'fasterrcnn:resnet18', kind: detection, num_classes: 2, "
          "image_size: 96, batch_size: 8, weights_backbone: " +
          shellQuote(classifier) +
          ", transforms: {hflip: true}, sampling: {rpn_batch_size_per_image: 64, "
          "box_batch_size_per_image: 16, rpn_pre_nms_top_n_train: 300, "
          "rpn_post_nms_top_n_train: 300}}\n");
  r = gemel(format("train --config {} --epochs 6 --out {}", shellQuote(yaml),
                   shellQuote(dir.file("trained"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expectItDetects(r.output, "bags_rcnn", "fasterrcnn:resnet18");
  if (::testing::Test::HasFatalFailure()) return;
  const auto trained = dir.file("trained/mixed.trained.yaml");
  r = gemel(format("merge --config {} --out {} --fixed-steps 2", shellQuote(trained),
                   shellQuote(dir.file("merged"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto results = dir.file("merged/results.h5");
  // The first trial's group pairs a detector backbone conv with the classifier's.
  const auto merged = io::readResults(results);
  EXPECT_TRUE(testing::sharesAcross(merged, "bags_rcnn:backbone.", "carry_a_resnet18:layer"))
      << r.output;

  r = gemel(format("eval --results {} --json --detections {}", shellQuote(results),
                   shellQuote(dir.file("detections"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto json = r.output.substr(r.output.find('{'));
  const double map50 = jsonNumber(json, "bags_rcnn", "score");
  EXPECT_GE(jsonNumber(json, "bags_rcnn", "unmerged_score"), 0.3) << json;
  EXPECT_GE(map50, jsonNumber(json, "bags_rcnn", "target")) << json;
  // The merge trained and scored the detector in fp32 and recorded that, so eval measures what
  // the merge measured.
  for (const auto& t : merged.tasks) {
    if (t.name != "bags_rcnn") continue;
    EXPECT_EQ(t.precision, "fp32");
    EXPECT_FALSE(t.channels_last);
    EXPECT_NEAR(t.final_score, map50, 1e-9) << json;
  }

  r = gemel(format("export --results {} --task bags_rcnn --out {}", shellQuote(results),
                   shellQuote(dir.file("bags.pt"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  writeValData(dir.file("bags_rcnn_OD.h5"), dir.file("val.pt"), {0.485, 0.456, 0.406},
               {0.229, 0.224, 0.225});
  // image_size 96: min_size 96, max_size 96 * 1333 / 800 rounded = 160; 2 classes and the
  // background.
  r = run(format("{} {} score fasterrcnn:resnet18 3 96 160 {} {} {}", shellQuote(GEMEL_PYTHON),
                 shellQuote(std::string(GEMEL_SOURCE_DIR) + "/tests/models/rcnn_ref.py"),
                 shellQuote(dir.file("bags.pt")), shellQuote(dir.file("val.pt")),
                 shellQuote(dir.file("detections/bags_rcnn.json"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("\"map50\": ([0-9.eE+-]+)"))) << r.output;
  EXPECT_NEAR(std::stod(m[1]), map50, 1e-4) << r.output;
  expectSameDetections(r.output, map50);
  std::printf(
      "unmerged mAP@0.5 %.6f, gemel eval %.6f; torchvision + pycocotools on the export: %s\n",
      jsonNumber(json, "bags_rcnn", "unmerged_score"), map50, r.output.c_str());

  // Under mpirun -np 3 the detector's two replicas also train on their halves of each batch's
  // images and boxes.
  expectReplicasGatherTheUnmergedScore(dir, trained, "bags_rcnn");
}

}  // namespace
}  // namespace gemel

namespace gemel {
namespace {

using testing::gemel;

// gemel bench runs both memory formats of a training step and reports them (no timing asserted:
// benchmarks print figures).
TEST(BenchCli, TimesATrainingStepInBothMemoryFormats) {
  for (const std::string arch : {"yolov3-tiny", "resnet18"}) {
    const auto r = gemel(format(
        "bench --arch {} --size 64 --batch 2 --steps 1 --classes 3 --modes fp32,fp32-cl --json",
        arch));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto json = r.output.substr(r.output.find('{'));
    EXPECT_NE(json.find("\"mode\":\"fp32\""), std::string::npos) << json;
    EXPECT_NE(json.find("\"mode\":\"fp32 channels_last\""), std::string::npos) << json;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(json, m, std::regex("\"loss\":([0-9.eE+-]+)"))) << json;
    EXPECT_GT(std::stod(m[1]), 0.0) << json;
  }
  // A workload's tasks, tied: two ResNet-18s share every conv (and no head: other classes).
  TempDir dir;
  testing::writeText(
      dir.file("w.yaml"),
      "name: w\ntasks:\n"
      "  - {name: a_resnet18, arch: resnet18, num_classes: 3, image_size: 32, batch_size: 2}\n"
      "  - {name: b_resnet18, arch: resnet18, num_classes: 2, image_size: 32, batch_size: 2}\n");
  const auto w = gemel(
      format("bench --config {} --steps 1 --modes fp32 --json", shellQuote(dir.file("w.yaml"))));
  ASSERT_EQ(w.exit_code, 0) << w.output;
  const auto wj = w.output.substr(w.output.find('{'));
  EXPECT_NE(wj.find("\"models\":\"resnet18,resnet18\""), std::string::npos) << wj;
  EXPECT_NE(wj.find("\"a_resnet18:layer4.1.conv2\",\"b_resnet18:layer4.1.conv2\""),
            std::string::npos)
      << wj;
  const auto bad = gemel("bench --arch yolov3-tiny --size 100");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("multiple of 32"), std::string::npos) << bad.output;
  // The CUDA-graph mode needs a GPU (and ResNet classifiers): one clear usage error elsewhere.
  if (!torch::cuda::is_available()) {
    const auto graph =
        gemel("bench --arch resnet18 --size 64 --batch 2 --steps 1 --modes fp32-graph");
    EXPECT_EQ(graph.exit_code, 2) << graph.output;
    EXPECT_NE(graph.output.find("needs a CUDA device"), std::string::npos) << graph.output;
  }
}

}  // namespace
}  // namespace gemel
