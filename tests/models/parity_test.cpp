// Parity with torchvision (the pinned wheel) for every zoo arch: a state_dict written by Python
// loads in gemel and gives the same outputs; a state_dict written by gemel loads into torchvision
// and gives the same outputs; parameter counts and default initialisation match.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gemel/models/archs.h"
#include "gemel/models/zoo.h"
#include "test_support.h"

namespace gemel::models {
namespace {

using gemel::testing::run;
using gemel::testing::shellQuote;
using gemel::testing::TempDir;

const std::string kReference = std::string(GEMEL_SOURCE_DIR) + "/tests/models/torchvision_ref.py";

std::string python(const std::string& args) {
  return shellQuote(GEMEL_PYTHON) + " " + shellQuote(kReference) + " " + args;
}

double relErr(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}

torch::Tensor entry(const StateDict& state, const std::string& name) {
  for (const auto& kv : state) {
    if (kv.first == name) return kv.second;
  }
  ADD_FAILURE() << "no entry " << name;
  return {};
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
  const auto input = entry(io, "input");
  const auto expected = entry(io, "output");
  const auto output = model->forward(input).logits;
  ASSERT_EQ(output.sizes(), expected.sizes());
  EXPECT_LE(relErr(output, expected), 1e-4) << arch;
  EXPECT_EQ(model->parameterCount(), entry(io, "num_params").item<int64_t>()) << arch;

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

TEST(TorchvisionParity, DefaultParameterCountsMatchTorchvision) {
  // 1000 classes, as torchvision's defaults; counts printed by the reference itself.
  const auto listed =
      run(shellQuote(GEMEL_PYTHON) +
          " -c \"import torchvision,sys\nfor a in sys.argv[1:]: "
          "print(a, sum(p.numel() for p in torchvision.models.__dict__[a]().parameters()))\" "
          "resnet50 vgg16 mobilenet_v2");
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  std::istringstream lines(listed.output);
  std::string arch;
  int64_t count = 0;
  int seen = 0;
  while (lines >> arch >> count) {
    EXPECT_EQ(createZooModel(arch, 1000)->parameterCount(), count) << arch;
    ++seen;
  }
  EXPECT_EQ(seen, 3) << listed.output;
}

}  // namespace
}  // namespace gemel::models
