// Parity with torchvision (the pinned wheel) for every zoo arch: a state_dict written by Python
// loads in gemel and gives the same outputs; a state_dict written by gemel loads into torchvision
// and gives the same outputs; parameter counts and default initialisation match.
#include <gtest/gtest.h>
#include <torch/torch.h>

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

std::string python(const std::string& args) {
  return shellQuote(GEMEL_PYTHON) + " " + shellQuote(kTorchvisionRef) + " " + args;
}

double relErr(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}

class TorchvisionParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TorchvisionParity, WeightsAndOutputsMatchBothWays) {
  const auto arch = GetParam();
  const int num_classes = 10;
  TempDir dir;
  const auto args = arch + " " + std::to_string(num_classes) + " " + shellQuote(dir.path());
  torch::NoGradGuard no_grad;

  // Python -> gemel
  const auto made = run(python("make " + args));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  auto model = createZooModel(arch, num_classes);
  model->loadWeightsFile(dir.file("py_weights.pt"), /*skip_head=*/false);
  model->train(false);
  const auto io = readStateDict(dir.file("py_io.pt"));
  const auto input = stateEntry(io, "input");
  const auto expected = stateEntry(io, "output");
  const auto output = model->forward(input).logits;
  ASSERT_EQ(output.sizes(), expected.sizes());
  EXPECT_LE(relErr(output, expected), 1e-4) << arch;
  EXPECT_EQ(model->parameterCount(), stateEntry(io, "num_params").item<int64_t>()) << arch;

  // gemel -> Python: a freshly initialised gemel model
  torch::manual_seed(7);
  auto fresh = createZooModel(arch, num_classes);
  fresh->saveWeightsFile(dir.file("cpp_weights.pt"));
  fresh->train(false);
  writeStateDict(dir.file("cpp_io.pt"), {{"output", fresh->forward(input).logits}});
  const auto checked = run(python("check " + args));
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
}

INSTANTIATE_TEST_SUITE_P(Zoo, TorchvisionParity, ::testing::ValuesIn(zooArchs()),
                         [](const auto& info) { return info.param; });

bool hasEntry(const StateDict& state, const std::string& name) {
  for (const auto& kv : state) {
    if (kv.first == name) return true;
  }
  return false;
}

// Gradients at 16 px, where strided convs see 1x1 maps (and gemel's take their unstrided path,
// nets.h), or at the arch's smallest size (Inception-v3: 80 px): one fp32 cross-entropy
// backward from the same weights gives torchvision's loss and every parameter's gradient (eval
// mode, as the reference explains). Parameters that torchvision leaves without a gradient
// (Inception-v3's AuxLogits) are frozen in gemel.
class SmallMapGradients : public ::testing::TestWithParam<std::string> {};

TEST_P(SmallMapGradients, MatchTorchvision) {
  const auto arch = GetParam();
  const int size = std::max(16, minImageSize(arch) + 5);
  TempDir dir;
  const auto made =
      run(python("grads " + arch + " 10 " + shellQuote(dir.path()) + " " + std::to_string(size)));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  auto model = createZooModel(arch, 10);
  model->loadWeightsFile(dir.file("py_weights.pt"), /*skip_head=*/false);
  model->train(false);
  const auto ref = readStateDict(dir.file("py_grads.pt"));
  const auto loss = torch::nn::functional::cross_entropy(
      model->forward(stateEntry(ref, "input")).logits, stateEntry(ref, "labels"));
  loss.backward();
  EXPECT_LE(relErr(loss, stateEntry(ref, "loss")), 1e-5) << arch;
  int compared = 0;
  for (const auto& [name, p] : model->namedParameters()) {
    if (!hasEntry(ref, "grad." + name)) {
      EXPECT_FALSE(p.requires_grad()) << arch << " " << name << ": torchvision gives no gradient";
      continue;
    }
    ASSERT_TRUE(p.grad().defined()) << name;
    EXPECT_LE(relErr(p.grad(), stateEntry(ref, "grad." + name)), 1e-4) << arch << " " << name;
    ++compared;
  }
  EXPECT_GT(compared, 10);
}

INSTANTIATE_TEST_SUITE_P(Zoo, SmallMapGradients,
                         ::testing::Values("resnet18", "resnet50", "mobilenet_v2",
                                           "mobilenet_v3_large", "mobilenet_v3_small",
                                           "inception_v3"),
                         [](const auto& info) { return info.param; });

TEST(TorchvisionParity, DefaultParameterCountsMatchTorchvision) {
  // 1000 classes, as torchvision's defaults; counts printed by the reference itself.
  const auto listed =
      run(shellQuote(GEMEL_PYTHON) +
          " -W ignore -c \"import torchvision,sys\nfor a in sys.argv[1:]: "
          "print(a, sum(p.numel() for p in torchvision.models.__dict__[a]().parameters()))\" "
          "resnet50 vgg16 mobilenet_v2 mobilenet_v3_large mobilenet_v3_small inception_v3");
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  std::istringstream lines(listed.output);
  std::string arch;
  int64_t count = 0;
  int seen = 0;
  while (lines >> arch >> count) {
    EXPECT_EQ(createZooModel(arch, 1000)->parameterCount(), count) << arch;
    ++seen;
  }
  EXPECT_EQ(seen, 6) << listed.output;
}

}  // namespace
}  // namespace gemel::models

namespace gemel::models {
namespace {

std::string loadError(const std::string& arch, int classes, const StateDict& state) {
  try {
    createZooModel(arch, classes)->loadStateDict(state, {false, "given.pt"});
    return "";
  } catch (const InputError& e) {
    return e.what();
  }
}

// Every arch refuses another arch's state_dict, and one of another class count, with one error
// naming the file and what to check (the head shapes alone: num_classes).
TEST(ZooStateDicts, AnotherArchOrClassCountIsOneClearError) {
  for (const std::string arch : {"mobilenet_v3_large", "mobilenet_v3_small", "inception_v3"}) {
    const auto other = arch == "mobilenet_v3_small" ? "mobilenet_v3_large" : "mobilenet_v3_small";
    auto msg = loadError(arch, 3, createZooModel(other, 3)->stateDict());
    EXPECT_NE(msg.find("given.pt"), std::string::npos) << arch << ": " << msg;
    EXPECT_NE(msg.find("another architecture"), std::string::npos) << arch << ": " << msg;
    msg = loadError(arch, 3, createZooModel(arch, 5)->stateDict());
    EXPECT_NE(msg.find("check num_classes"), std::string::npos) << arch << ": " << msg;
  }
  // Inception-v3's auxiliary classifier has num_classes outputs too: skip_head skips both.
  auto model = createZooModel("inception_v3", 3);
  EXPECT_NO_THROW(
      model->loadStateDict(createZooModel("inception_v3", 5)->stateDict(), {true, "given.pt"}));
}

}  // namespace
}  // namespace gemel::models
