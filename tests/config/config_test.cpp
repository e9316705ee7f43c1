#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <optional>

#include "gemel/config/dump.h"
#include "gemel/config/parser.h"
#include "gemel/core/error.h"
#include "test_support.h"

namespace gemel::config {
namespace {

using gemel::testing::TempDir;
using gemel::testing::writeText;

// Loads YAML text from a temp file; returns the ConfigError message ("" if it loaded).
std::string loadError(const TempDir& dir, const std::string& yaml) {
  const auto path = dir.file("w.yaml");
  writeText(path, yaml);
  try {
    loadWorkload(path);
    return "";
  } catch (const ConfigError& e) {
    return e.what();
  }
}

constexpr const char* kValid = R"(name: demo
defaults:
  accuracy_target: 0.9
  batch_size: 8
tasks:
  - name: cars_main_resnet18
    arch: resnet18
    num_classes: 2
  - name: people_vgg11
    arch: vgg11
    num_classes: 3
    batch_size: 4
    dataset: custom/people.h5
)";

TEST(Config, ExamplesLoad) {
  for (const auto& [name, tasks] : std::vector<std::pair<std::string, std::size_t>>{
           {"small.yaml", 4}, {"mixed.yaml", 4}, {"rcnn_street.yaml", 3}}) {
    const auto w = loadWorkload(std::string(GEMEL_SOURCE_DIR) + "/configs/examples/" + name);
    EXPECT_EQ(w.tasks.size(), tasks) << name;
  }
}

TEST(Config, AppliesDefaultsAndOverrides) {
  TempDir dir;
  writeText(dir.file("w.yaml"), kValid);
  const auto w = loadWorkload(dir.file("w.yaml"));
  ASSERT_EQ(w.tasks.size(), 2u);
  EXPECT_DOUBLE_EQ(w.tasks[0].accuracy_target, 0.9);
  EXPECT_EQ(w.tasks[0].batch_size, 8);
  EXPECT_EQ(w.tasks[1].batch_size, 4);
  EXPECT_EQ(w.tasks[0].image_size, 224);
  EXPECT_FALSE(w.tasks[0].unmerged_acc.has_value());
  EXPECT_EQ(w.search.strategy, "greedy");
}

TEST(Config, DefaultDatasetFollowsTheNamingConvention) {
  TempDir dir;
  writeText(dir.file("w.yaml"), kValid);
  const auto w = loadWorkload(dir.file("w.yaml"));
  const auto base = std::filesystem::path(dir.path());
  EXPECT_EQ(w.tasks[0].dataset, (base / "cars_main_CL.h5").string());
  EXPECT_EQ(w.tasks[1].dataset, (base / "custom/people.h5").string());
  EXPECT_EQ(defaultDatasetName("peds_yolov3", "yolov3", TaskKind::kDetection), "peds_OD.h5");
  EXPECT_EQ(defaultDatasetName("plain", "resnet18", TaskKind::kClassification), "plain_CL.h5");
}

TEST(Config, DatasetsDirOverrideResolvesDatasets) {
  TempDir dir;
  writeText(dir.file("w.yaml"), kValid);
  LoadOptions options;
  options.datasets_dir = dir.file("elsewhere");
  const auto w = loadWorkload(dir.file("w.yaml"), options);
  EXPECT_EQ(w.tasks[0].dataset, dir.file("elsewhere") + "/cars_main_CL.h5");
}

TEST(Config, DumpLoadsBackToTheSameWorkload) {
  TempDir dir;
  writeText(dir.file("w.yaml"), kValid);
  const auto w = loadWorkload(dir.file("w.yaml"));
  const auto dumped = dumpWorkload(w);
  writeText(dir.file("dumped.yaml"), dumped);
  const auto again = loadWorkload(dir.file("dumped.yaml"));
  EXPECT_EQ(dumpWorkload(again), dumped);
  EXPECT_NE(dumped.find("accuracy_target: 0.9\n"), std::string::npos) << dumped;
}

TEST(Config, ReportsEveryProblemWithLineKeyValueAndExpectation) {
  TempDir dir;
  const auto msg = loadError(dir, R"(name: demo
defaults:
  accuracy_target: 1.5
tasks:
  - name: a_resnet18
    arch: resnet5
    num_classes: 2
  - name: a_resnet18
    arch: resnet18
    num_clases: 2
    batch_size: many
)");
  EXPECT_NE(msg.find("problems in workload"), std::string::npos) << msg;
  EXPECT_NE(msg.find("w.yaml:3: defaults.accuracy_target: got 1.5; expected a fraction in (0, 1]"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("w.yaml:6: tasks[0].arch: got 'resnet5', which is not a known arch (did you "
                     "mean 'resnet50'?); expected one of: resnet18"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("w.yaml:8: tasks[1].name: duplicate task name 'a_resnet18'"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("w.yaml:10: tasks[1].num_clases: unknown key"), std::string::npos) << msg;
  EXPECT_NE(msg.find("w.yaml:11: tasks[1].batch_size: got 'many'; expected an integer"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("tasks[1].num_classes: missing"), std::string::npos) << msg;
}

TEST(Config, SearchEarlyStopAndRecoveryKeys) {
  TempDir dir;
  writeText(dir.file("w.yaml"),
            "name: demo\nsearch: {drop_after_epochs: 1.5, recovery_fraction: 0.5}\ntasks:\n"
            "  - {name: t, arch: resnet18, num_classes: 2}\n");
  const auto w = loadWorkload(dir.file("w.yaml"));
  EXPECT_DOUBLE_EQ(w.search.drop_after_epochs, 1.5);
  EXPECT_DOUBLE_EQ(w.search.recovery_fraction, 0.5);
  const auto msg =
      loadError(dir,
                "name: demo\nsearch:\n  drop_after_epochs: -1\n  recovery_fraction: 2\n"
                "tasks:\n  - {name: t, arch: resnet18, num_classes: 2}\n");
  EXPECT_NE(msg.find("w.yaml:3: search.drop_after_epochs: got -1; expected >= 0"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("w.yaml:4: search.recovery_fraction: got 2; expected a fraction in [0, 1]"),
            std::string::npos)
      << msg;
}

TEST(Config, SearchTimeBudget) {
  TempDir dir;
  writeText(dir.file("w.yaml"),
            "name: demo\nsearch: {time_budget: 900}\ntasks:\n"
            "  - {name: t, arch: resnet18, num_classes: 2}\n");
  EXPECT_DOUBLE_EQ(loadWorkload(dir.file("w.yaml")).search.time_budget, 900);
  const auto msg = loadError(dir,
                             "name: demo\nsearch:\n  time_budget: -5\n"
                             "tasks:\n  - {name: t, arch: resnet18, num_classes: 2}\n");
  EXPECT_NE(msg.find("w.yaml:3: search.time_budget: got -5; expected seconds >= 0"),
            std::string::npos)
      << msg;
}

// Inception-v3 needs 75 px (torchvision's min_size); an SSD takes its own fixed size and
// normalisation unless the task sets them, and ssd300_vgg16 needs 268 px.
TEST(Config, InceptionAndSsdSizesAndDefaults) {
  TempDir dir;
  const auto inception = loadError(dir,
                                   "name: demo\ntasks:\n  - {name: t, arch: inception_v3, "
                                   "num_classes: 2, image_size: 64}\n");
  EXPECT_NE(inception.find("tasks[0].image_size: got 64; expected at least 75 pixels for arch "
                           "'inception_v3'"),
            std::string::npos)
      << inception;
  writeText(dir.file("w.yaml"),
            "name: demo\ndefaults: {image_size: 64}\ntasks:\n"
            "  - {name: a, arch: ssdlite320_mobilenet_v3_large, kind: detection, num_classes: 2}\n"
            "  - {name: b, arch: ssd300_vgg16, kind: detection, num_classes: 2, image_size: 300,"
            " transforms: {mean: [0.1, 0.2, 0.3]}}\n");
  const auto w = loadWorkload(dir.file("w.yaml"));
  EXPECT_EQ(w.tasks[0].image_size, 320);
  EXPECT_EQ(w.tasks[0].transforms.mean, (std::vector<double>{0.5, 0.5, 0.5}));
  EXPECT_EQ(w.tasks[0].transforms.std, (std::vector<double>{0.5, 0.5, 0.5}));
  EXPECT_EQ(w.tasks[1].transforms.mean, (std::vector<double>{0.1, 0.2, 0.3}));
  EXPECT_NEAR(w.tasks[1].transforms.std[0], 1.0 / 255, 1e-12);
  const auto vgg = loadError(dir,
                             "name: demo\ntasks:\n  - {name: t, arch: ssd300_vgg16, kind: "
                             "detection, num_classes: 2, image_size: 200}\n");
  EXPECT_NE(vgg.find("tasks[0].image_size: got 200; expected at least 268 pixels"),
            std::string::npos)
      << vgg;
}

TEST(Config, DetectorsNeedKindDetectionAndAStrideMultiple) {
  TempDir dir;
  writeText(dir.file("w.yaml"),
            "name: demo\ntasks:\n  - {name: t, arch: yolov3-tiny, kind: detection, num_classes: 2, "
            "image_size: 416}\n");
  EXPECT_EQ(loadWorkload(dir.file("w.yaml")).tasks[0].arch, "yolov3-tiny");
  const auto msg = loadError(dir,
                             "name: demo\ntasks:\n  - {name: t, arch: yolov3, num_classes: 2, "
                             "image_size: 100}\n");
  EXPECT_NE(msg.find("tasks[0].kind: missing or 'classification', but arch 'yolov3' is a detector"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("tasks[0].image_size: got 100; arch 'yolov3' needs a multiple of 32"),
            std::string::npos)
      << msg;
  // A Faster R-CNN is a detector at any image_size from 32 (its transform's min_size; the batch
  // is padded to a multiple of 32 whatever it is).
  writeText(dir.file("w.yaml"),
            "name: demo\ntasks:\n  - {name: t, arch: 'fasterrcnn:resnet18', kind: detection, "
            "num_classes: 2, image_size: 100}\n");
  EXPECT_EQ(loadWorkload(dir.file("w.yaml")).tasks[0].image_size, 100);
  const auto rcnn = loadError(dir,
                              "name: demo\ntasks:\n  - {name: t, arch: fasterrcnn_resnet50_fpn, "
                              "num_classes: 2, image_size: 16}\n");
  EXPECT_NE(rcnn.find("tasks[0].kind: missing or 'classification', but arch "
                      "'fasterrcnn_resnet50_fpn' is a detector"),
            std::string::npos)
      << rcnn;
  EXPECT_NE(rcnn.find("tasks[0].image_size: got 16; expected at least 32 pixels for arch "
                      "'fasterrcnn_resnet50_fpn'"),
            std::string::npos)
      << rcnn;
  const auto unknown = loadError(dir,
                                 "name: demo\ntasks:\n  - {name: t, arch: 'fasterrcnn:resnet34', "
                                 "kind: detection, num_classes: 2}\n");
  EXPECT_NE(unknown.find("fasterrcnn:<resnet18|resnet50|resnet101|vgg16|mobilenet_v2>"),
            std::string::npos)
      << unknown;
}

// A Faster R-CNN's training-time sampling: torchvision's keyword arguments by name, counts and
// fractions checked, a mistyped key with its nearest name, other archs refused, kept by a dump.
TEST(Config, SamplingIsAFasterRcnnsOwnAndChecked) {
  TempDir dir;
  writeText(dir.file("w.yaml"),
            "name: demo\ntasks:\n  - {name: t, arch: 'fasterrcnn:resnet18', kind: detection, "
            "num_classes: 2, image_size: 96, sampling: {box_batch_size_per_image: 64, "
            "rpn_post_nms_top_n_train: 300, box_positive_fraction: 0.5}}\n");
  const auto w = loadWorkload(dir.file("w.yaml"));
  EXPECT_EQ(w.tasks[0].sampling,
            (std::map<std::string, double>{{"box_batch_size_per_image", 64},
                                           {"box_positive_fraction", 0.5},
                                           {"rpn_post_nms_top_n_train", 300}}));
  writeText(dir.file("dumped.yaml"), dumpWorkload(w));
  EXPECT_EQ(loadWorkload(dir.file("dumped.yaml")).tasks[0].sampling, w.tasks[0].sampling);

  const auto msg = loadError(
      dir,
      "name: demo\ntasks:\n  - {name: t, arch: 'fasterrcnn:resnet18', kind: detection, "
      "num_classes: 2, sampling: {box_batch_size_per_img: 64, rpn_batch_size_per_image: 0.5, "
      "rpn_positive_fraction: 2}}\n  - {name: u, arch: yolov3-tiny, kind: detection, "
      "num_classes: 2, image_size: 64, sampling: {box_batch_size_per_image: 64}}\n");
  for (const char* said :
       {"tasks[0].sampling.box_batch_size_per_img: unknown key (did you mean "
        "'box_batch_size_per_image'?)",
        "tasks[0].sampling.rpn_batch_size_per_image: got 0.5; expected a whole number >= 1",
        "tasks[0].sampling.rpn_positive_fraction: got 2; expected a fraction in (0, 1]",
        "tasks[1].sampling: is set, but arch 'yolov3-tiny' is not a Faster R-CNN"}) {
    EXPECT_NE(msg.find(said), std::string::npos) << said << "\n" << msg;
  }
}

// torchvision's fine-tuning switches: fasterrcnn_resnet50_fpn only, 0 to 5 stages; unset means
// "as the weights' layout says", and a dump keeps what was set.
TEST(Config, FrozenBatchNormAndTrainableBackboneLayersAreTheFpnDetectorsOwn) {
  TempDir dir;
  writeText(dir.file("w.yaml"),
            "name: demo\ntasks:\n  - {name: t, arch: fasterrcnn_resnet50_fpn, kind: detection, "
            "num_classes: 2, image_size: 128, frozen_batchnorm: true, "
            "trainable_backbone_layers: 2}\n  - {name: u, arch: fasterrcnn_resnet50_fpn, "
            "kind: detection, num_classes: 2, image_size: 128}\n");
  const auto w = loadWorkload(dir.file("w.yaml"));
  EXPECT_EQ(w.tasks[0].frozen_batchnorm, std::optional<bool>(true));
  EXPECT_EQ(w.tasks[0].trainable_backbone_layers, std::optional<int>(2));
  EXPECT_FALSE(w.tasks[1].frozen_batchnorm.has_value());
  EXPECT_FALSE(w.tasks[1].trainable_backbone_layers.has_value());
  const auto dumped = dumpWorkload(w);
  EXPECT_NE(dumped.find("frozen_batchnorm: true"), std::string::npos) << dumped;
  writeText(dir.file("dumped.yaml"), dumped);
  const auto again = loadWorkload(dir.file("dumped.yaml"));
  EXPECT_EQ(again.tasks[0].trainable_backbone_layers, std::optional<int>(2));
  EXPECT_FALSE(again.tasks[1].frozen_batchnorm.has_value());

  const auto msg = loadError(dir,
                             "name: demo\ntasks:\n  - {name: t, arch: 'fasterrcnn:resnet18', "
                             "kind: detection, num_classes: 2, frozen_batchnorm: true}\n"
                             "  - {name: u, arch: fasterrcnn_resnet50_fpn, kind: detection, "
                             "num_classes: 2, trainable_backbone_layers: 6}\n");
  EXPECT_NE(msg.find("tasks[0].frozen_batchnorm: is set, but only arch fasterrcnn_resnet50_fpn"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("tasks[1].trainable_backbone_layers: got 6; expected 0 to 5"),
            std::string::npos)
      << msg;
}

// weights_backbone: a Faster R-CNN's, resolved from the workload's directory, not with
// weights (which hold the whole detector), and kept by a dump.
TEST(Config, WeightsBackboneIsForADetectorWithoutWeights) {
  TempDir dir;
  writeText(dir.file("r50.pt"), "x");
  writeText(dir.file("w.yaml"),
            "name: demo\ntasks:\n  - {name: t, arch: fasterrcnn_resnet50_fpn, kind: detection, "
            "num_classes: 2, image_size: 128, weights_backbone: r50.pt}\n");
  const auto w = loadWorkload(dir.file("w.yaml"));
  EXPECT_EQ(w.tasks[0].weights_backbone, dir.file("r50.pt"));
  EXPECT_NE(dumpWorkload(w).find("weights_backbone: " + dir.file("r50.pt")), std::string::npos);
  const auto msg =
      loadError(dir,
                "name: demo\ntasks:\n  - {name: t, arch: resnet50, num_classes: 2, "
                "weights_backbone: r50.pt}\n  - {name: u, arch: 'fasterrcnn:resnet18', "
                "kind: detection, num_classes: 2, weights: r50.pt, "
                "weights_backbone: r50.pt}\n  - {name: v, arch: 'fasterrcnn:vgg16', "
                "kind: detection, num_classes: 2, weights_backbone: nothere.pt}\n");
  EXPECT_NE(
      msg.find("tasks[0].weights_backbone: is set, but arch 'resnet50' is not a Faster R-CNN"),
      std::string::npos)
      << msg;
  EXPECT_NE(msg.find("tasks[1].weights_backbone: is set together with weights"), std::string::npos)
      << msg;
  EXPECT_NE(
      msg.find("tasks[2].weights_backbone: file '" + dir.file("nothere.pt") + "' does not exist"),
      std::string::npos)
      << msg;
}

TEST(Config, MalformedYamlNamesLineAndColumn) {
  TempDir dir;
  const auto msg = loadError(dir, "name: demo\ntasks: [\n  - name: x\n");
  EXPECT_NE(msg.find("malformed YAML"), std::string::npos) << msg;
  EXPECT_NE(msg.find("w.yaml:"), std::string::npos) << msg;
}

TEST(Config, MissingWeightsAndDatasetsAreReported) {
  TempDir dir;
  const std::string yaml = R"(name: demo
tasks:
  - name: cars_resnet18
    arch: resnet18
    num_classes: 2
    weights: nowhere/cars.pt
)";
  const auto msg = loadError(dir, yaml);
  EXPECT_NE(msg.find("w.yaml:6: tasks[0].weights: file '" + dir.path() +
                     "/nowhere/cars.pt' does not exist"),
            std::string::npos)
      << msg;
  writeText(dir.file("w2.yaml"),
            "name: demo\ntasks:\n  - {name: cars_resnet18, arch: resnet18, num_classes: 2}\n");
  LoadOptions options;
  options.require_datasets = true;
  try {
    loadWorkload(dir.file("w2.yaml"), options);
    FAIL() << "missing dataset accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cars_CL.h5' does not exist"), std::string::npos)
        << e.what();
  }
}

TEST(Config, StructuralMistakes) {
  TempDir dir;
  EXPECT_NE(loadError(dir, "- just\n- a list\n").find("expected a mapping"), std::string::npos);
  EXPECT_NE(loadError(dir, "name: demo\ntasks: []\n").find("tasks: missing or empty"),
            std::string::npos);
  EXPECT_NE(loadError(dir, "name: demo\ntasks: {a: 1}\n").find("expected a list of tasks"),
            std::string::npos);
  EXPECT_NE(loadError(dir,
                      "name: demo\nsearch: {strategy: manual}\ntasks:\n  - {name: t, arch: vgg11, "
                      "num_classes: 2}\n")
                .find("search.groups: missing"),
            std::string::npos);
  EXPECT_NE(loadError(dir, "name: demo\ntasks:\n  - {name: t, arch: torchscript}\n")
                .find("tasks[0].weights: missing; arch 'torchscript' needs weights"),
            std::string::npos);
  EXPECT_NE(
      loadError(dir,
                "name: demo\ntasks:\n  - {name: t, arch: vgg11, num_classes: 2, kind: detection}\n")
          .find("is a classification model"),
      std::string::npos);
  EXPECT_NE(
      loadError(dir,
                "name: demo\ntasks:\n  - {name: t, arch: vgg11, num_classes: 2, image_size: 16}\n")
          .find("expected at least 32 pixels"),
      std::string::npos);
}

TEST(Config, MissingFileIsAConfigError) {
  try {
    loadWorkload("/nonexistent/w.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/w.yaml: no such workload file"),
              std::string::npos);
    EXPECT_EQ(e.code(), ExitCode::kConfig);
  }
}

}  // namespace
}  // namespace gemel::config
