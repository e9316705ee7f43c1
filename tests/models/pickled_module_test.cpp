// Whole models pickled with torch.save(model), as the original Gemel's model files hold them:
// gemel reads their parameters and buffers by module path, without Python, takes the arch from
// the pickled classes, and checks it against the task's. The reference side is
// tests/models/torchvision_ref.py (pickle).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gemel/config/workload.h"
#include "gemel/core/error.h"
#include "gemel/models/archs.h"
#include "gemel/models/zoo.h"
#include "state_dict_support.h"
#include "test_support.h"

namespace gemel::models {
namespace {

using gemel::testing::run;
using gemel::testing::shellQuote;
using gemel::testing::TempDir;

using gemel::testing::kTorchvisionRef;
using gemel::testing::stateEntry;

void pickleModel(const std::string& arch, int num_classes, const TempDir& dir) {
  const auto made =
      run(shellQuote(GEMEL_PYTHON) + " " + shellQuote(kTorchvisionRef) + " pickle " +
          shellQuote(arch) + " " + std::to_string(num_classes) + " " + shellQuote(dir.path()));
  ASSERT_EQ(made.exit_code, 0) << made.output;
}

std::string errorOf(const std::function<void()>& f) {
  try {
    f();
    return "";
  } catch (const InputError& e) {
    return e.what();
  }
}

struct Case {
  std::string arch;  // the task's arch, and what the pickle must be recognised as
  std::string cls;   // the pickled class
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.arch; }

class PickledModel : public ::testing::TestWithParam<Case> {};

// The pickle gives model.state_dict() exactly (names, order, values), its arch, and a task of
// that arch built from it gives torchvision's outputs (classifiers: logits on the same input).
TEST_P(PickledModel, ReadsAsItsStateDictAndArch) {
  const auto& c = GetParam();
  const int num_classes = 3;
  TempDir dir;
  pickleModel(c.arch, num_classes, dir);
  const auto file = readWeightsFile(dir.file("py_model.pt"));
  EXPECT_EQ(file.module_class, c.cls);
  EXPECT_EQ(file.arch, c.arch);
  const auto expected = readStateDict(dir.file("py_weights.pt"));
  ASSERT_EQ(file.state.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(file.state[i].first, expected[i].first);
    EXPECT_TRUE(torch::equal(file.state[i].second, expected[i].second)) << expected[i].first;
  }

  config::TaskConfig task;
  task.name = "cam";
  task.arch = c.arch;
  task.num_classes = num_classes;
  task.image_size = 96;
  task.weights = dir.file("py_model.pt");
  auto model = buildTaskModel(task);
  if (isTorchvisionDetectorArch(c.arch)) return;  // its state_dict equal, its outputs are
  model->train(false);
  torch::NoGradGuard no_grad;
  const auto io = readStateDict(dir.file("py_io.pt"));
  const auto out = model->forward(stateEntry(io, "input")).logits;
  const auto ref = stateEntry(io, "output");
  ASSERT_EQ(out.sizes(), ref.sizes());
  EXPECT_LE(((out - ref).abs().max() / ref.abs().max()).item<double>(), 1e-4) << c.arch;

  // The same file for a task of another arch: one error naming the class and both archs.
  task.arch = c.arch == "vgg16" ? "resnet50" : "vgg16";
  const auto msg = errorOf([&] { buildTaskModel(task); });
  EXPECT_NE(msg.find(dir.file("py_model.pt")), std::string::npos) << msg;
  EXPECT_NE(msg.find(c.cls), std::string::npos) << msg;
  EXPECT_NE(msg.find("'" + c.arch + "'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'" + task.arch + "'"), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    Torchvision, PickledModel,
    ::testing::Values(
        Case{"resnet50", "torchvision.models.resnet.ResNet"},
        Case{"vgg16", "torchvision.models.vgg.VGG"},
        Case{"inception_v3", "torchvision.models.inception.Inception3"},
        Case{"mobilenet_v3_large", "torchvision.models.mobilenetv3.MobileNetV3"},
        Case{"fasterrcnn:resnet18", "torchvision.models.detection.faster_rcnn.FasterRCNN"},
        Case{"fasterrcnn:vgg16", "torchvision.models.detection.faster_rcnn.FasterRCNN"},
        Case{"fasterrcnn_mobilenet_v3_large_fpn",
             "torchvision.models.detection.faster_rcnn.FasterRCNN"},
        Case{"ssd300_vgg16", "torchvision.models.detection.ssd.SSD"},
        Case{"ssdlite320_mobilenet_v3_large", "torchvision.models.detection.ssd.SSD"}),
    [](const auto& info) {
      auto name = info.param.arch;
      for (auto& ch : name) ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
      return name;
    });

// A class gemel does not build gets one error naming the file and the class: the user's own
// (__main__.Custom), and a torchvision model it does not build.
TEST(PickledModel, AnUnknownClassIsNamed) {
  for (const std::string arch : {"custom", "squeezenet1_0"}) {
    TempDir dir;
    pickleModel(arch, 3, dir);
    const auto path = dir.file("py_model.pt");
    const auto msg = errorOf([&] { readWeightsFile(path); });
    const std::string cls =
        arch == "custom" ? "__main__.Custom" : "torchvision.models.squeezenet.SqueezeNet";
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("pickled " + cls + " "), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.state_dict()"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace gemel::models
