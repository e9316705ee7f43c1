// Darknet models built from the shipped cfgs: PyTorch-YOLOv3's parameter and buffer names, the
// parameter count the cfg implies, the heads' output layout, and the conv layers the merge
// search sees (a tied tensor is used by forward).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gemel/models/darknet_cfg.h"
#include "gemel/models/zoo.h"

namespace gemel::models {
namespace {

const std::string kModels = std::string(GEMEL_SOURCE_DIR) + "/configs/models/";

TEST(Darknet, TinyModelHasPytorchyoloNamesAndTheHeadsLayout) {
  const auto cfg = parseDarknetCfg(kModels + "yolov3-tiny.cfg", 2);
  auto model = createDarknetModel("yolov3-tiny", cfg);
  const auto params = model->namedParameters();
  EXPECT_EQ(params.front().first, "module_list.0.conv_0.weight");
  EXPECT_EQ(model->parameterCount(), cfg.parameterCount());
  bool head_bias = false, bn_mean = false;
  for (const auto& [name, t] : params) head_bias |= name == "module_list.15.conv_15.bias";
  for (const auto& [name, t] : model->namedBuffers())
    bn_mean |= name == "module_list.0.batch_norm_0.running_mean";
  EXPECT_TRUE(head_bias);
  EXPECT_TRUE(bn_mean);
  EXPECT_EQ(model->layers().size(), 13u);  // the tiny net's convolutions

  model->train(false);
  torch::NoGradGuard no_grad;
  const auto x = torch::rand({2, 3, 64, 64});
  const auto out = model->forward(x).logits;
  // Heads at 1/32 (2x2) and 1/16 (4x4), 3 anchors each, 5 + 2 values per anchor.
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 3 * 4 + 3 * 16, 7}));

  // The first head's raw values are its convolution's output, regrouped per anchor and cell.
  // Tying: a given tensor becomes the parameter forward uses.
  const auto w = torch::zeros({21, 512, 1, 1});
  model->setParameter("module_list.15.conv_15.weight", w);
  auto b = torch::zeros({21});
  b[4] = 3.0;  // anchor 0's objectness
  model->setParameter("module_list.15.conv_15.bias", b);
  const auto again = model->forward(x).logits;
  for (int cell = 0; cell < 4; ++cell) {
    EXPECT_FLOAT_EQ(again[0][cell][4].item<float>(), 3.0f);      // anchor 0, every cell
    EXPECT_FLOAT_EQ(again[0][4 + cell][4].item<float>(), 0.0f);  // anchor 1
  }
}

TEST(Darknet, YoloV3BuildsAndRunsAtASmallSize) {
  const auto cfg = parseDarknetCfg(kModels + "yolov3.cfg", 3);
  auto model = createDarknetModel("yolov3", cfg);
  EXPECT_EQ(model->parameterCount(), cfg.parameterCount());
  EXPECT_EQ(model->layers().size(), 75u);
  model->train(false);
  torch::NoGradGuard no_grad;
  const auto out = model->forward(torch::rand({1, 3, 64, 64})).logits;
  // 1/32, 1/16 and 1/8 of 64: 2x2, 4x4, 8x8 cells, 3 anchors each, 5 + 3 values.
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 3 * (4 + 16 + 64), 8}));
}

}  // namespace
}  // namespace gemel::models
