#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gemel/core/error.h"
#include "gemel/merge/catalog.h"
#include "gemel/merge/model_layers.h"
#include "gemel/models/zoo.h"
#include "test_support.h"

namespace gemel::models {
namespace {

using gemel::testing::run;
using gemel::testing::shellQuote;
using gemel::testing::TempDir;

std::string loadError(Model& model, const std::string& path, bool skip_head) {
  try {
    model.loadWeightsFile(path, skip_head);
    return "";
  } catch (const InputError& e) {
    return e.what();
  }
}

const LayerInfo& layer(const std::vector<LayerInfo>& layers, const std::string& module) {
  for (const auto& l : layers) {
    if (l.module == module) return l;
  }
  throw std::runtime_error("no layer " + module);
}

TEST(Zoo, LayersAreConvAndLinearInDefinitionOrder) {
  const auto layers = createZooModel("resnet18", 10)->layers();
  ASSERT_EQ(layers.size(), 21u);  // 20 convolutions + fc
  EXPECT_EQ(layers.front().module, "conv1");
  EXPECT_EQ(layers.front().signature(), "conv2d weight[64,3,7,7] p3,3 d1,1 g1");
  EXPECT_EQ(layers.back().module, "fc");
  EXPECT_EQ(layers.back().signature(), "linear weight[10,512] bias[10]");
  EXPECT_EQ(layers.back().bytes, (10 * 512 + 10) * 4);
}

TEST(Zoo, StrideIsNotPartOfTheSignature) {
  const auto layers = createZooModel("resnet50", 1000)->layers();
  // layer2.0.conv2 has stride 2, layer2.1.conv2 stride 1: same weights shape, shareable.
  EXPECT_EQ(layer(layers, "layer2.0.conv2").signature(),
            layer(layers, "layer2.1.conv2").signature());
  const auto mobile = createZooModel("mobilenet_v2", 1000)->layers();
  EXPECT_EQ(layer(mobile, "features.1.conv.0.0").signature(),
            "conv2d weight[32,1,3,3] p1,1 d1,1 g32");
}

TEST(Zoo, UnknownArchOrBadClassCountIsAConfigError) {
  EXPECT_THROW(createZooModel("resnet19", 10), ConfigError);
  EXPECT_THROW(createZooModel("resnet18", 0), ConfigError);
}

TEST(Zoo, HeadMismatchNeedsSkipHead) {
  TempDir dir;
  createZooModel("resnet18", 10)->saveWeightsFile(dir.file("r18_10.pt"));
  auto three = createZooModel("resnet18", 3);
  const auto msg = loadError(*three, dir.file("r18_10.pt"), false);
  EXPECT_NE(msg.find("wrong shape for 'fc.weight (file [10,512], model [3,512])'"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("set skip_head: true"), std::string::npos) << msg;

  // With skip_head the backbone loads and the head keeps its own initialisation.
  const auto head_before = three->namedParameters().back().second.clone();
  EXPECT_EQ(loadError(*three, dir.file("r18_10.pt"), true), "");
  const auto source = readStateDict(dir.file("r18_10.pt"));
  EXPECT_TRUE(torch::equal(three->namedParameters().front().second, source.front().second));
  EXPECT_TRUE(torch::equal(three->namedParameters().back().second, head_before));
}

TEST(Zoo, WeightsOfAnotherArchitectureNameTheKeys) {
  TempDir dir;
  createZooModel("mobilenet_v2", 10)->saveWeightsFile(dir.file("mnv2.pt"));
  auto resnet = createZooModel("resnet18", 10);
  const auto msg = loadError(*resnet, dir.file("mnv2.pt"), false);
  EXPECT_NE(msg.find("mnv2.pt: does not fit arch 'resnet18': missing key 'conv1.weight'"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("unexpected key 'features.0.0.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("another architecture"), std::string::npos) << msg;
}

class ScriptModels : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    for (const char* how : {"script", "trace"}) {
      const auto r =
          run(shellQuote(GEMEL_PYTHON) + " " +
              shellQuote(std::string(GEMEL_SOURCE_DIR) + "/tests/models/torchvision_ref.py") + " " +
              how + " resnet18 10 " + shellQuote(dir_->file(std::string(how) + ".pt")));
      ASSERT_EQ(r.exit_code, 0) << r.output;
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static TempDir* dir_;
};
TempDir* ScriptModels::dir_ = nullptr;

TEST_F(ScriptModels, ScriptedModuleExposesTheSameLayersAsTheZoo) {
  auto script = loadScriptModel(dir_->file("script.pt"));
  const auto zoo = createZooModel("resnet18", 10);
  const auto a = script->layers();
  const auto b = zoo->layers();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].module, b[i].module);
    EXPECT_EQ(a[i].signature(), b[i].signature());
  }
  EXPECT_EQ(script->headPrefix(), "fc.");
  EXPECT_EQ(script->parameterCount(), zoo->parameterCount());
  torch::NoGradGuard no_grad;
  script->train(false);
  EXPECT_EQ(script->forward(torch::randn({1, 3, 64, 64})).logits.sizes(),
            (std::vector<int64_t>{1, 10}));

  // Every layer of the scripted model can share with the zoo model.
  merge::LayerCatalog cat(
      {merge::describeModel("script", *script), merge::describeModel("zoo", *zoo)});
  int64_t layer_bytes = 0;
  for (const auto& l : b) layer_bytes += l.bytes;
  EXPECT_EQ(cat.savingsBytes(), layer_bytes);
}

TEST_F(ScriptModels, TracedModuleLayersShareOnlyWithTracedLayers) {
  auto traced = loadScriptModel(dir_->file("trace.pt"));
  const auto layers = traced->layers();
  ASSERT_EQ(layers.size(), 21u);
  EXPECT_EQ(layers[0].signature(), "conv2d weight[64,3,7,7] hp?");
  EXPECT_EQ(layers[20].signature(), "linear weight[10,512] bias[10]");
  EXPECT_THROW(loadScriptModel(std::string(GEMEL_SOURCE_DIR) + "/configs/examples/small.yaml"),
               InputError);
}

}  // namespace
}  // namespace gemel::models
