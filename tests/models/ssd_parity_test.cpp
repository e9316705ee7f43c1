// SSD and SSDlite against torchvision (tests/models/ssd_ref.py) from the same weights and
// images: the state_dict's names, order and shapes, the eval-mode detections, the two train-mode
// losses (the same default boxes matched to the same ground truth) and every parameter's
// gradient; gemel's own weights load strictly into torchvision with its default initialisation.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>

#include "gemel/core/error.h"
#include "gemel/models/ssd.h"
#include "gemel/models/state_dict.h"
#include "state_dict_support.h"
#include "test_support.h"

namespace gemel::models {
namespace {

using gemel::testing::run;
using gemel::testing::shellQuote;
using gemel::testing::TempDir;

std::string reference(const std::string& command, const std::string& arch, const TempDir& dir) {
  return shellQuote(GEMEL_PYTHON) + " " +
         shellQuote(std::string(GEMEL_SOURCE_DIR) + "/tests/models/ssd_ref.py") + " " + command +
         " " + arch + " 3 " + shellQuote(dir.path());
}

std::unique_ptr<Model> ssd(const std::string& arch) {
  return makeSsdModel(
      arch, 3,
      ssdSettingsFor(arch, ssdDefaultSize(arch), ssdDefaultMean(arch), ssdDefaultStd(arch)));
}

class SsdParity : public ::testing::TestWithParam<std::string> {};

TEST_P(SsdParity, NamesDetectionsLossesAndGradientsMatchTorchvision) {
  const auto arch = GetParam();
  TempDir dir;
  const auto made = run(reference("make", arch, dir));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const auto weights = readStateDict(dir.file("py_weights.pt"));
  const auto io_list = readStateDict(dir.file("py_io.pt"));
  const std::map<std::string, torch::Tensor> io(io_list.begin(), io_list.end());

  auto model = ssd(arch);
  std::map<std::string, std::vector<int64_t>> my_shapes, their_shapes;
  for (const auto& [k, v] : model->stateDict()) my_shapes[k] = v.sizes().vec();
  for (const auto& [k, v] : weights) their_shapes[k] = v.sizes().vec();
  ASSERT_EQ(my_shapes, their_shapes);
  model->loadStateDict(weights, {false, "py_weights.pt"});

  const auto images = torch::stack({io.at("image0"), io.at("image1")});
  model->train(false);
  ModelOutput eval;
  {
    torch::NoGradGuard no_grad;
    eval = model->forward(images, nullptr);
  }
  ASSERT_EQ(eval.detections.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const auto n = std::to_string(i);
    const auto& d = eval.detections[i];
    ASSERT_GT(d.boxes.size(0), 0) << "image " << i << ": no detections";
    ASSERT_EQ(d.boxes.sizes(), io.at("det_boxes" + n).sizes()) << "image " << i;
    // 1e-5 for scores and 1e-3 for boxes, or 4x torchvision's own fp32 error against fp64 on
    // this machine (rcnn_ref.py float_errors), whichever is larger.
    const double score_tol = std::max(1e-5, 4 * testing::referenceFloatError(io, "scores" + n));
    const double box_tol = std::max(1e-3, 4 * testing::referenceFloatError(io, "boxes" + n));
    EXPECT_LE((d.scores - io.at("det_scores" + n)).abs().max().item<double>(), score_tol) << i;
    EXPECT_TRUE(torch::equal(d.labels, io.at("det_labels" + n))) << i;
    EXPECT_LE((d.boxes - io.at("det_boxes" + n)).abs().max().item<double>(), box_tol) << i;
  }

  model->train(true);
  const std::vector<BoxTargets> targets{{io.at("boxes0"), io.at("labels0")},
                                        {io.at("boxes1"), io.at("labels1")}};
  const auto train = model->forward(images, &targets);
  ASSERT_EQ(train.losses.size(), 2u);
  EXPECT_EQ(train.losses[0].first, "bbox_regression");
  EXPECT_EQ(train.losses[1].first, "classification");
  for (const auto& [name, value] : train.losses) {
    const double want = io.at(name).item<double>();
    EXPECT_GT(want, 0) << name;
    const double fp = testing::referenceFloatError(io, name);
    EXPECT_NEAR(value.item<double>(), want, std::max(1e-4 * std::max(1.0, std::abs(want)), 4 * fp))
        << name << " (torchvision's own fp32 error " << fp << ")";
  }
  // Gradients with BatchNorm frozen on its running statistics (ssd_ref.py says why).
  model->freeze({}, "backbone.");
  model->freeze({}, "head.");
  const auto frozen = model->forward(images, &targets);
  for (const auto& [name, value] : frozen.losses) {
    const double want = io.at("frozen." + name).item<double>();
    EXPECT_NEAR(value.item<double>(), want, 1e-4 * std::max(1.0, std::abs(want))) << name;
  }
  (frozen.losses[0].second + frozen.losses[1].second).backward();
  int compared = 0;
  double worst = 0;
  for (const auto& [name, p] : model->namedParameters()) {
    if (!p.requires_grad()) {
      EXPECT_EQ(io.count("grad." + name), 0u) << name << ": torchvision gives it a gradient";
      continue;
    }
    ASSERT_TRUE(p.grad().defined()) << name;
    const auto& ref = io.at("grad." + name);
    const double err = ((p.grad() - ref).norm() / ref.norm().clamp_min(1e-12)).item<double>();
    worst = std::max(worst, err);
    EXPECT_LE(err, 2e-3) << name;  // relative to the gradient's norm: float sums in other orders
    ++compared;
  }
  std::printf("%s: %d gradients, worst relative error %.2g\n", arch.c_str(), compared, worst);
}

// gemel's freshly built model, saved, loads strictly into torchvision's and is initialised as
// torchvision initialises it.
TEST_P(SsdParity, FreshWeightsLoadIntoTorchvisionWithItsInitialisation) {
  const auto arch = GetParam();
  TempDir dir;
  torch::manual_seed(5);
  ssd(arch)->saveWeightsFile(dir.file("cpp_weights.pt"));
  const auto checked = run(reference("check", arch, dir));
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
}

INSTANTIATE_TEST_SUITE_P(Ssd, SsdParity,
                         ::testing::Values("ssd300_vgg16", "ssdlite320_mobilenet_v3_large"));

// A state_dict of another SSD, or of another class count, gets one error naming the file.
TEST(Ssd, AStateDictOfAnotherArchOrClassCountIsRefused) {
  auto lite = ssd("ssdlite320_mobilenet_v3_large");
  const auto vgg = ssd("ssd300_vgg16")->stateDict();
  try {
    lite->loadStateDict(vgg, {false, "vgg.pt"});
    FAIL() << "loaded";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("vgg.pt"), std::string::npos) << msg;
    EXPECT_NE(msg.find("another architecture"), std::string::npos) << msg;
  }
  auto five = makeSsdModel("ssd300_vgg16", 6,
                           ssdSettingsFor("ssd300_vgg16", 300, ssdDefaultMean("ssd300_vgg16"),
                                          ssdDefaultStd("ssd300_vgg16")));
  try {
    five->loadStateDict(vgg, {false, "vgg.pt"});
    FAIL() << "loaded";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("check num_classes"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace gemel::models
