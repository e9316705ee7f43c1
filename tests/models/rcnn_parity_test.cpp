// Faster R-CNN against torchvision (tests/models/rcnn_ref.py) from the same weights and images:
// the state_dict's names and shapes, the eval-mode detections, and the four train-mode losses
// with the samplers' draws made equal (the same seed, drawn in the same order).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <set>

#include "gemel/config/workload.h"
#include "gemel/core/error.h"
#include "gemel/models/faster_rcnn.h"
#include "gemel/models/state_dict.h"
#include "gemel/models/zoo.h"
#include "state_dict_support.h"
#include "test_support.h"

namespace gemel::models {
namespace {

using gemel::testing::run;
using gemel::testing::shellQuote;
using gemel::testing::TempDir;

std::map<std::string, torch::Tensor> asMap(const StateDict& state) {
  return {state.begin(), state.end()};
}

// The arch's settings (its builder's defaults) at rcnn_ref.py's sizes(arch).
RcnnSettings smallImages(const std::string& arch = "") {
  const bool mobile = arch.find("mobilenet_v3") != std::string::npos;
  auto s = rcnnSettingsFor(mobile ? 320 : 128, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}, arch);
  s.max_size = mobile ? 400 : 160;
  return s;
}

// rcnn_ref.py with these arguments.
std::string referenceScript(const std::string& args) {
  return shellQuote(GEMEL_PYTHON) + " " +
         shellQuote(std::string(GEMEL_SOURCE_DIR) + "/tests/models/rcnn_ref.py") + " " + args;
}

std::string reference(const std::string& command, const std::string& arch, const TempDir& dir) {
  return referenceScript(command + " " + shellQuote(arch) + " 3 " + shellQuote(dir.path()));
}

// A detection task of two object classes.
config::TaskConfig detectorTask(const std::string& name, const std::string& arch, int image_size) {
  config::TaskConfig task;
  task.name = name;
  task.arch = arch;
  task.kind = config::TaskKind::kDetection;
  task.num_classes = 2;
  task.image_size = image_size;
  return task;
}

class RcnnParity : public ::testing::TestWithParam<std::string> {};

// A task's sampling keys set the training-time sampling of its model's settings, and only those.
TEST(Rcnn, SamplingKeysSetTheModelsTrainingSampling) {
  config::TaskConfig task;
  task.name = "t";
  task.arch = "fasterrcnn:resnet18";
  task.image_size = 96;
  task.sampling = {{"rpn_batch_size_per_image", 64},  {"rpn_positive_fraction", 0.25},
                   {"rpn_pre_nms_top_n_train", 500},  {"rpn_post_nms_top_n_train", 300},
                   {"box_batch_size_per_image", 128}, {"box_positive_fraction", 0.5}};
  const auto s = rcnnSettingsFor(task);
  const RcnnSettings defaults;
  EXPECT_EQ(s.rpn_batch_size_per_image, 64);
  EXPECT_DOUBLE_EQ(s.rpn_positive_fraction, 0.25);
  EXPECT_EQ(s.rpn_pre_nms_top_n_train, 500);
  EXPECT_EQ(s.rpn_post_nms_top_n_train, 300);
  EXPECT_EQ(s.box_batch_size_per_image, 128);
  EXPECT_DOUBLE_EQ(s.box_positive_fraction, 0.5);
  // evaluation and the transform as without them
  EXPECT_EQ(s.rpn_post_nms_top_n_test, defaults.rpn_post_nms_top_n_test);
  EXPECT_EQ(s.box_detections_per_img, defaults.box_detections_per_img);
  EXPECT_EQ(s.min_size, 96);
}

TEST_P(RcnnParity, NamesDetectionsAndLossesMatchTorchvision) {
  const auto arch = GetParam();
  TempDir dir;
  const auto made = run(reference("make", arch, dir));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const auto weights = asMap(readStateDict(dir.file("py_weights.pt")));
  const auto io = asMap(readStateDict(dir.file("py_io.pt")));

  FasterRcnn model(arch, 3, smallImages(arch));
  auto& net = model.module();
  std::map<std::string, torch::Tensor> mine;
  for (const auto& p : net.named_parameters(true)) mine[p.key()] = p.value();
  for (const auto& b : net.named_buffers(true)) mine[b.key()] = b.value();
  std::map<std::string, std::vector<int64_t>> my_shapes, their_shapes;
  for (const auto& [k, v] : mine) my_shapes[k] = v.sizes().vec();
  for (const auto& [k, v] : weights) their_shapes[k] = v.sizes().vec();
  ASSERT_EQ(my_shapes, their_shapes);
  {
    torch::NoGradGuard no_grad;
    for (auto& [k, v] : mine) v.copy_(weights.at(k));
  }

  const std::vector<torch::Tensor> images{io.at("image0"), io.at("image1")};
  net.eval();
  RcnnOutput eval;
  {
    torch::NoGradGuard no_grad;
    eval = model.forward(images);
  }
  ASSERT_EQ(eval.detections.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const auto n = std::to_string(i);
    const auto& d = eval.detections[i];
    ASSERT_EQ(d.boxes.sizes(), io.at("det_boxes" + n).sizes()) << "image " << i;
    // Something to compare: the scene's score layers make the untrained model detect.
    EXPECT_GT(d.boxes.size(0), 0) << "image " << i;
    // 1e-5 for scores and 1e-3 for boxes, or 4x torchvision's own fp32 error against fp64 on
    // this machine (rcnn_ref.py float_errors), whichever is larger: a CPU that rounds float
    // sums differently moves torchvision's results as much as gemel's.
    const double score_tol = std::max(1e-5, 4 * testing::referenceFloatError(io, "scores" + n));
    const double box_tol = std::max(1e-3, 4 * testing::referenceFloatError(io, "boxes" + n));
    EXPECT_LE((d.scores - io.at("det_scores" + n)).abs().max().item<double>(), score_tol) << i;
    EXPECT_TRUE(torch::equal(d.labels, io.at("det_labels" + n))) << i;
    // Detections of exactly equal score (proposals whose pooled features are equal, as over
    // dead regions of an untrained backbone) come in whatever order torchvision's unstable sort
    // gives them, and NMS among them keeps whichever comes first: their boxes are not compared.
    // Every other box must be torchvision's.
    const auto& ref_boxes = io.at("det_boxes" + n);
    const auto& ref_scores = io.at("det_scores" + n);
    int64_t tied = 0;
    for (int64_t k = 0; k < d.boxes.size(0); ++k) {
      const auto near = (ref_scores - ref_scores[k]).abs() < 1e-6;
      if (near.sum().item<int64_t>() > 1) {
        ++tied;
        continue;
      }
      EXPECT_LE((d.boxes[k] - ref_boxes[k]).abs().max().item<double>(), box_tol)
          << "image " << i << ": detection " << k << " " << d.boxes[k] << " torchvision "
          << ref_boxes[k];
    }
    std::printf("image %d: %ld detections, %ld of them in ties of equal score\n", i,
                static_cast<long>(d.boxes.size(0)), static_cast<long>(tied));
    EXPECT_LE(tied, d.boxes.size(0) / 4) << "too few boxes left to compare";
  }

  net.train();
  const std::vector<RcnnTarget> targets{{io.at("boxes0"), io.at("labels0")},
                                        {io.at("boxes1"), io.at("labels1")}};
  torch::manual_seed(io.at("seed").item<int64_t>());
  const auto train = model.forward(images, &targets);
  std::vector<std::string> names;
  for (const auto& [name, value] : train.losses) {
    names.push_back(name);
    const double want = io.at(name).item<double>();
    // 1e-4, or twice what torchvision's own loss moves when its images move by 1e-6
    // (rcnn_ref.py loss_spread), or 4x torchvision's own fp32 error against fp64, whichever is
    // larger.
    const double spread = io.at("spread." + name).item<double>();
    const double fp = testing::referenceFloatError(io, name);
    EXPECT_NEAR(value.item<double>(), want,
                std::max({1e-4 * std::max(1.0, std::abs(want)), 2 * spread, 4 * fp}))
        << name << " (torchvision's own spread " << spread << ", fp32 error " << fp << ")";
  }
  EXPECT_EQ(names, (std::vector<std::string>{"loss_classifier", "loss_box_reg", "loss_objectness",
                                             "loss_rpn_box_reg"}));
  // The losses reach every trainable layer.
  torch::Tensor total = train.losses[0].second;
  for (std::size_t k = 1; k < train.losses.size(); ++k) total = total + train.losses[k].second;
  total.backward();
  // Every gradient as torchvision's: within 2e-3 of its norm (float sums in other orders), or
  // twice what torchvision's own moves when the images move by 1e-6, whichever is larger.
  double worst = 0;
  int nonzero = 0, within = 0, all = 0;
  for (const auto& p : net.named_parameters(true)) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    const auto& ref = io.at("grad." + p.key());
    const double err = (p.value().grad() - ref).norm().item<double>();
    const double norm = ref.norm().item<double>();
    const double spread = io.at("spread.grad." + p.key()).item<double>();
    EXPECT_LE(err, std::max(2e-3 * norm, 2 * spread) + 1e-12)
        << p.key() << ": norm " << norm << ", torchvision's own spread " << spread;
    if (norm > 0) worst = std::max(worst, err / norm);
    nonzero += norm > 0;
    within += err <= 2e-3 * norm;
    ++all;
  }
  std::printf("%s: %d gradients, %d non-zero, %d within 2e-3 of their norm; worst %.2g\n",
              arch.c_str(), all, nonzero, within, worst);
  // The comparison is not empty: the losses reach most layers with a gradient.
  EXPECT_GE(nonzero, all / 2) << arch;
}

INSTANTIATE_TEST_SUITE_P(Rcnn, RcnnParity,
                         ::testing::Values("fasterrcnn_resnet50_fpn", "fasterrcnn:resnet18",
                                           "fasterrcnn:vgg16", "fasterrcnn_mobilenet_v3_large_fpn",
                                           "fasterrcnn_mobilenet_v3_large_320_fpn"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (auto& c : name)
                             c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

// A torchvision state_dict loads into gemel's model of the same arch and classes, and what gemel
// writes loads strictly back into torchvision, equal tensor for tensor (num_batches_tracked
// included). One for another number of classes, or another backbone, is one clear error.
TEST(Rcnn, TorchvisionStateDictsLoadBothWaysAndOthersAreRefused) {
  TempDir dir;
  const auto made = run(reference("make", "fasterrcnn:resnet18", dir));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const auto model = createZooModel("fasterrcnn:resnet18", 3);
  model->loadWeightsFile(dir.file("py_weights.pt"), false);
  model->saveWeightsFile(dir.file("cpp_weights.pt"));
  const auto checked = run(reference("check", "fasterrcnn:resnet18", dir));
  EXPECT_EQ(checked.exit_code, 0) << checked.output;

  try {
    createZooModel("fasterrcnn:resnet18", 2)->loadWeightsFile(dir.file("py_weights.pt"), false);
    ADD_FAILURE() << "weights for 3 classes loaded into a model of 2";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("roi_heads.box_predictor.cls_score.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("check num_classes"), std::string::npos) << msg;
  }
  try {
    createZooModel("fasterrcnn:vgg16", 3)->loadWeightsFile(dir.file("py_weights.pt"), false);
    ADD_FAILURE() << "a ResNet-18 detector's weights loaded into a VGG-16 one";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("another architecture"), std::string::npos) << e.what();
  }
}

// torchvision's COCO-pretrained fasterrcnn_resnet50_fpn has FrozenBatchNorm2d in its body: no
// num_batches_tracked. Its layout loads, every tensor copied; the counters stay at 0.
TEST(Rcnn, TheCocoPretrainedLayoutWithFrozenBatchNormLoads) {
  TempDir dir;
  const auto made = run(referenceScript("frozen 3 " + shellQuote(dir.path())));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const auto model = createZooModel("fasterrcnn_resnet50_fpn", 3);
  model->loadWeightsFile(dir.file("py_weights.pt"), false);
  const auto given = readStateDict(dir.file("py_weights.pt"));
  std::map<std::string, torch::Tensor> mine;
  for (const auto& [name, t] : model->stateDict()) mine.emplace(name, t);
  for (const auto& [name, t] : given) EXPECT_TRUE(torch::equal(mine.at(name), t)) << name;
  EXPECT_EQ(mine.size(), given.size() + 53);  // + the body's 53 BatchNorm counters
  EXPECT_EQ(mine.at("backbone.body.layer1.0.bn1.num_batches_tracked").item<int64_t>(), 0);
  // Without the running statistics too, the BatchNorm is missing, not frozen.
  auto cut = given;
  cut.erase(
      std::remove_if(cut.begin(), cut.end(),
                     [](const auto& kv) { return kv.first == "backbone.body.bn1.running_mean"; }),
      cut.end());
  try {
    model->loadStateDict(cut, {false, "cut.pt"});
    ADD_FAILURE() << "a state_dict without a running_mean loaded";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("backbone.body.bn1.num_batches_tracked"),
              std::string::npos)
        << e.what();
  }
}

// A task's num_classes counts its object classes; the model adds the background. Weights for
// another number of classes get one error naming the predictor and that count.
TEST(Rcnn, ATaskCountsItsObjectClassesAndTheModelAddsTheBackground) {
  TempDir dir;
  const auto two = createTaskModel("fasterrcnn:resnet18", 2, 64);
  std::map<std::string, torch::Tensor> state;
  for (const auto& [name, t] : two->stateDict()) state.emplace(name, t);
  EXPECT_EQ(state.at("roi_heads.box_predictor.cls_score.weight").size(0), 3);
  two->saveWeightsFile(dir.file("two.pt"));
  auto task = detectorTask("bags", "fasterrcnn:resnet18", 64);
  task.weights = dir.file("two.pt");
  EXPECT_NO_THROW(buildTaskModel(task));
  task.num_classes = 3;
  try {
    buildTaskModel(task);
    ADD_FAILURE() << "weights for 2 object classes loaded into a task of 3";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("task 'bags' (key weights)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("roi_heads.box_predictor.cls_score.weight (file [3,1024], model [4,1024])"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("its predictor has num_classes + 1 outputs, the background included"),
              std::string::npos)
        << msg;
  }
}

// Fine-tuning torchvision's COCO-pretrained layout as torchvision does: the body's BatchNorm
// frozen (its statistics used in training, and left as they are) and conv1 and layer1 frozen
// (trainable_backbone_layers 3), chosen from the weights' layout alone. The same four losses,
// the same parameters with a gradient and the same gradients as torchvision's model; the frozen
// layers are not offered for sharing; what gemel writes loads strictly into both torchvision
// layouts. A task can turn both off.
TEST(Rcnn, FineTuningTheCocoLayoutFreezesWhatTorchvisionFreezes) {
  TempDir dir;
  const auto made = run(referenceScript("frozen_step 3 " + shellQuote(dir.path())));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const auto io = asMap(readStateDict(dir.file("py_io.pt")));
  auto task = detectorTask("coco", "fasterrcnn_resnet50_fpn", 128);  // rcnn_ref.py's 128, 213
  task.weights = dir.file("py_weights.pt");
  const auto spec = freezeSpec(task, readStateDict(task.weights));
  EXPECT_TRUE(spec.frozen_batchnorm);
  EXPECT_EQ(spec.trainable_backbone_layers, 3);
  const auto model = buildTaskModel(task);
  const auto before = asMap(model->stateDictCopy());

  model->train(true);
  const auto images = torch::stack({io.at("image0"), io.at("image1")});
  const std::vector<BoxTargets> targets{{io.at("boxes0"), io.at("labels0")},
                                        {io.at("boxes1"), io.at("labels1")}};
  torch::manual_seed(io.at("seed").item<int64_t>());
  const auto out = model->forward(images, &targets);
  ASSERT_EQ(out.losses.size(), 4u);
  torch::Tensor total = torch::zeros({});
  for (const auto& [name, value] : out.losses) {
    const double want = io.at(name).item<double>();
    EXPECT_NEAR(value.item<double>(), want, 1e-4 * std::max(1.0, std::abs(want))) << name;
    total = total + value;
  }
  total.backward();
  std::set<std::string> mine, theirs;
  for (const auto& [name, t] : io) {
    if (name.rfind("grad.", 0) == 0) theirs.insert(name.substr(5));
  }
  for (const auto& [name, p] : model->namedParameters()) {
    if (!p.requires_grad()) {
      EXPECT_FALSE(p.grad().defined()) << name;
      continue;
    }
    mine.insert(name);
    if (!theirs.count(name)) continue;
    ASSERT_TRUE(p.grad().defined()) << name;
    const auto& want = io.at("grad." + name);
    // Relative to the gradient's norm: float sums in another order through a ResNet-50 differ
    // by up to 5e-4 of it (measured); a layer trained or frozen differently differs by ~1.
    const double error = ((p.grad() - want).norm() / (want.norm() + 1e-12)).item<double>();
    EXPECT_LE(error, 2e-3) << name;
  }
  EXPECT_EQ(mine, theirs);
  EXPECT_FALSE(mine.count("backbone.body.conv1.weight"));
  EXPECT_FALSE(mine.count("backbone.body.layer1.0.conv1.weight"));
  EXPECT_FALSE(mine.count("backbone.body.layer2.0.bn1.weight"));
  EXPECT_TRUE(mine.count("backbone.body.layer2.0.conv1.weight"));
  // The frozen statistics took no update from the training forward.
  for (const auto& [name, t] : model->namedBuffers()) {
    if (name.rfind("backbone.body.", 0) == 0 && name.find("running_") != std::string::npos) {
      EXPECT_TRUE(torch::equal(t, before.at(name))) << name;
    }
  }
  std::set<std::string> layers;
  for (const auto& l : model->layers()) layers.insert(l.module);
  EXPECT_FALSE(layers.count("backbone.body.conv1"));
  EXPECT_FALSE(layers.count("backbone.body.layer1.0.conv1"));
  EXPECT_TRUE(layers.count("backbone.body.layer2.0.conv1"));
  EXPECT_TRUE(layers.count("backbone.fpn.inner_blocks.0.0"));

  model->saveWeightsFile(dir.file("cpp_weights.pt"));
  const auto checked = run(referenceScript("frozen_check 3 " + shellQuote(dir.path())));
  EXPECT_EQ(checked.exit_code, 0) << checked.output;

  // Turned off: every layer trains and is offered for sharing.
  task.frozen_batchnorm = false;
  task.trainable_backbone_layers = 5;
  const auto open = buildTaskModel(task);
  for (const auto& [name, p] : open->namedParameters()) EXPECT_TRUE(p.requires_grad()) << name;
  EXPECT_EQ(open->layers().size(), layers.size() + 1 + 10);  // conv1, layer1's 10 convs
}

// weights_backbone, as torchvision's: a torchvision classifier's state_dict starts the
// detector's body, tensor for tensor (conv1 -> backbone.body.conv1 in the FPN build, -> backbone.0
// in the original Gemel's; features.N -> backbone.N), the rest keeps its init, and the FPN build
// then fine-tunes as from pretrained weights (frozen BatchNorm, three stages). A classifier of
// another backbone is one error naming the file, the key and the tensors.
TEST(Rcnn, WeightsBackboneStartsTheBodyFromAClassifierAsTorchvisionDoes) {
  TempDir dir;
  for (const char* name : {"resnet50", "resnet18", "vgg16"}) {
    const auto made =
        run(referenceScript(std::string("classifier ") + name + " " + shellQuote(dir.path())));
    ASSERT_EQ(made.exit_code, 0) << made.output;
  }
  struct Case {
    std::string arch, classifier, detector_name, classifier_name;
  };
  const std::vector<Case> cases{
      {"fasterrcnn_resnet50_fpn", "resnet50", "backbone.body.layer3.1.conv2.weight",
       "layer3.1.conv2.weight"},
      {"fasterrcnn_resnet50_fpn", "resnet50", "backbone.body.bn1.running_var", "bn1.running_var"},
      {"fasterrcnn:resnet18", "resnet18", "backbone.0.weight", "conv1.weight"},
      {"fasterrcnn:resnet18", "resnet18", "backbone.1.running_mean", "bn1.running_mean"},
      {"fasterrcnn:resnet18", "resnet18", "backbone.7.1.conv2.weight", "layer4.1.conv2.weight"},
      {"fasterrcnn:vgg16", "vgg16", "backbone.28.weight", "features.28.weight"}};
  for (const auto& c : cases) {
    auto task = detectorTask("cam", c.arch, 64);
    task.weights_backbone = dir.file(c.classifier + ".pt");
    const auto model = buildTaskModel(task);
    const auto mine = asMap(model->stateDict());
    const auto theirs = asMap(readStateDict(task.weights_backbone));
    EXPECT_TRUE(torch::equal(mine.at(c.detector_name), theirs.at(c.classifier_name)))
        << c.arch << ": " << c.detector_name;
    // Outside the body, the detector's own init (an untrained RPN head is N(0, 0.01)).
    EXPECT_LT(mine.at("rpn.head.cls_logits.weight").std().item<double>(), 0.02) << c.arch;
    // The FPN build fine-tunes as from pretrained weights; the plain builds train everything.
    const bool fpn = c.arch == "fasterrcnn_resnet50_fpn";
    int frozen = 0;
    for (const auto& [name, p] : model->namedParameters()) frozen += !p.requires_grad();
    EXPECT_EQ(frozen > 0, fpn) << c.arch << ": " << frozen << " frozen parameters";
  }
  auto task = detectorTask("cam", "fasterrcnn_resnet50_fpn", 224);
  task.weights_backbone = dir.file("resnet18.pt");
  try {
    buildTaskModel(task);
    ADD_FAILURE() << "a ResNet-18 classifier started a ResNet-50 detector";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("task 'cam' (key weights_backbone): " + task.weights_backbone),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("expected torchvision's resnet50 names and shapes"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("layer1.0.conv1.weight (for backbone.body.layer1.0.conv1.weight) is "
                       "[64, 64, 3, 3], the detector's [64, 64, 1, 1]"),
              std::string::npos)
        << msg;
  }
}

TEST(Rcnn, UnknownArchsAndBadInputsAreRefused) {
  EXPECT_THROW(FasterRcnn("fasterrcnn:resnet34", 3), ConfigError);
  EXPECT_THROW(FasterRcnn("fasterrcnn_resnet50_fpn", 1), ConfigError);
  EXPECT_FALSE(isFasterRcnnArch("resnet50"));
  EXPECT_TRUE(isFasterRcnnArch("fasterrcnn:vgg16"));
  FasterRcnn model("fasterrcnn:resnet18", 2, smallImages());
  model.module().train();
  const std::vector<torch::Tensor> images{torch::rand({3, 64, 64})};
  EXPECT_THROW(model.forward(images), InputError);  // training without targets
  const std::vector<RcnnTarget> flat{
      {torch::tensor({{10.f, 10.f, 10.f, 30.f}}), torch::tensor({1L})}};
  EXPECT_THROW(model.forward(images, &flat), InputError);  // a box without width
  model.module().eval();
  EXPECT_THROW(model.forward({torch::rand({64, 64})}), InputError);
}

}  // namespace
}  // namespace gemel::models
