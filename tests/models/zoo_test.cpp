#include <gtest/gtest.h>
#include <torch/torch.h>

#include "../../src/models/nets.h"  // models-internal: the zoo's Conv2d
#include "gemel/core/error.h"
#include "gemel/core/format.h"
#include "gemel/merge/catalog.h"
#include "gemel/merge/model_layers.h"
#include "gemel/models/zoo.h"
#include "gemel/train/precision.h"
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

// bf16 training at 16 px: layer4's first 3x3 conv (stride 2) sees 1x1 maps, so only its
// centre tap sees data and every other tap's gradient is exactly 0. LibTorch 2.11's CPU bf16
// strided conv backward wrote garbage (often NaN) there, in either memory format, on a CPU with
// AVX512-BF16; the zoo's conv takes the unstrided path there (nets.h).
TEST(Zoo, Bf16GradientsOfTapsThatSeeOnlyPaddingAreZero) {
  for (const bool channels_last : {false, true}) {
    for (const std::string arch : {"resnet18", "resnet50"}) {
      torch::manual_seed(0);
      auto model = createZooModel(arch, 10);
      model->train(true);
      const std::string name = arch == "resnet18" ? "layer4.0.conv1" : "layer4.0.conv2";
      torch::Tensor weight;
      for (const auto& [n, p] : model->namedParameters()) {
        if (channels_last && p.dim() == 4)
          p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
        if (n == name + ".weight") weight = p;
      }
      ASSERT_TRUE(weight.defined()) << name;
      auto x = torch::randn({16, 3, 16, 16});
      if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
      for (int step = 0; step < 3; ++step) {  // garbage came and went from one call to the next
        torch::Tensor logits;
        {
          train::AutocastScope autocast(torch::kCPU, train::Precision::kBf16);
          logits = model->forward(x).logits;
        }
        logits.to(torch::kFloat).logsumexp(1).sum().backward();
        const auto grad = weight.grad();
        auto off_centre = grad.clone();
        off_centre.select(2, 1).select(2, 1).zero_();
        EXPECT_TRUE(grad.isfinite().all().item<bool>()) << arch << " " << name;
        EXPECT_EQ(off_centre.abs().max().item<double>(), 0.0)
            << arch << " " << name << (channels_last ? " channels_last" : "") << " step " << step;
        EXPECT_GT(grad.select(2, 1).select(2, 1).abs().max().item<double>(), 0.0);
        weight.mutable_grad().zero_();
      }
    }
  }
}

// On the CPU the zoo's Conv2d runs a conv whose output map is tiny as a matrix product over
// the input's taps (nets.h). Output, input gradient and weight and bias gradients match
// torch::conv2d in fp32, for either memory format, which the output keeps; under bf16 autocast
// the output is bf16, as the conv's is. The cases cover each branch: 1x1 and 3x3 kernels,
// strides, padding, dilation, a bias, 1x1 maps, and maps too large for the product.
TEST(Zoo, SmallMapConvMatchesTorchConv2d) {
  struct Case {
    int64_t in, out, size, kernel, stride, padding, dilation;
    bool bias;
  };
  const std::vector<Case> cases = {{64, 48, 2, 3, 1, 1, 1, false},  {32, 40, 4, 3, 2, 1, 1, true},
                                   {48, 96, 4, 1, 1, 0, 1, false},  {96, 24, 8, 1, 2, 0, 1, true},
                                   {16, 32, 1, 3, 2, 1, 1, false},  {24, 16, 5, 3, 2, 2, 2, true},
                                   {40, 24, 4, 2, 1, 0, 1, false},  {16, 16, 8, 3, 1, 1, 1, false},
                                   {256, 24, 3, 3, 1, 1, 1, true},  {256, 16, 5, 3, 2, 1, 1, false},
                                   {256, 16, 6, 3, 1, 1, 1, false}, {512, 8, 5, 3, 1, 1, 1, true}};
  for (const auto& c : cases) {
    for (const bool channels_last : {false, true}) {
      const auto fmt =
          channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
      const std::string what = format("in {} out {} map {} k{} s{} p{} d{}{}{}", c.in, c.out,
                                      c.size, c.kernel, c.stride, c.padding, c.dilation,
                                      c.bias ? " bias" : "", channels_last ? " channels_last" : "");
      torch::manual_seed(0);
      Conv2d conv(torch::nn::Conv2dOptions(c.in, c.out, c.kernel)
                      .stride(c.stride)
                      .padding(c.padding)
                      .dilation(c.dilation)
                      .bias(c.bias));
      conv->weight.set_data(conv->weight.contiguous(fmt));
      auto x = torch::randn({5, c.in, c.size, c.size}).contiguous(fmt).requires_grad_();
      auto y = conv->forward(x);
      EXPECT_TRUE(y.is_contiguous(fmt)) << what;
      const auto g = torch::randn(y.sizes());
      y.backward(g);

      auto w = conv->weight.detach().clone().requires_grad_();
      auto b = c.bias ? conv->bias.detach().clone().requires_grad_() : torch::Tensor();
      auto x2 = x.detach().clone().requires_grad_();
      auto ref = torch::conv2d(x2, w, b, c.stride, c.padding, c.dilation);
      ref.backward(g);
      ASSERT_EQ(y.sizes(), ref.sizes()) << what;
      const auto close = [](const torch::Tensor& a, const torch::Tensor& e) {
        return (a - e).abs().max().item<double>() <=
               1e-5 * std::max(1.0, e.abs().max().item<double>());
      };
      EXPECT_TRUE(close(y, ref)) << what;
      EXPECT_TRUE(close(x.grad(), x2.grad())) << what << ": input gradient";
      EXPECT_TRUE(close(conv->weight.grad(), w.grad())) << what << ": weight gradient";
      if (c.bias) {
        EXPECT_TRUE(close(conv->bias.grad(), b.grad())) << what << ": bias gradient";
      }

      conv->weight.mutable_grad() = torch::Tensor();
      auto x3 = x.detach().clone().requires_grad_();
      torch::Tensor low;
      {
        train::AutocastScope autocast(torch::kCPU, train::Precision::kBf16);
        low = conv->forward(x3);
      }
      EXPECT_EQ(low.scalar_type(), torch::kBFloat16) << what;
      const auto near = [](const torch::Tensor& a, const torch::Tensor& e) {
        return (a.to(torch::kFloat) - e).abs().max().item<double>() <
               0.05 * e.abs().max().item<double>();
      };
      EXPECT_TRUE(near(low, ref.detach())) << what << ": bf16 output";
      low.backward(g.to(torch::kBFloat16));
      // Gradients leave in the dtype the parameters and inputs have.
      ASSERT_EQ(conv->weight.grad().scalar_type(), torch::kFloat) << what;
      ASSERT_EQ(x3.grad().scalar_type(), torch::kFloat) << what;
      EXPECT_TRUE(near(conv->weight.grad(), w.grad())) << what << ": bf16 weight gradient";
      EXPECT_TRUE(near(x3.grad(), x2.grad())) << what << ": bf16 input gradient";
    }
  }
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
