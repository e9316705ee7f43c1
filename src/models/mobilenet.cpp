// MobileNetV2 (width 1.0) as torchvision 0.14 builds it: Conv2dNormActivation blocks are
// Sequential(conv, bn, relu6), inverted residuals keep their layers in `conv`.
#include "nets.h"

namespace gemel::models {
namespace {

namespace nn = torch::nn;

// Conv2dNormActivation: conv (no bias) + BatchNorm + ReLU6, "same" padding.
Seq convBnAct(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups) {
  return Seq(Conv2d(nn::Conv2dOptions(in, out, kernel)
                        .stride(stride)
                        .padding((kernel - 1) / 2)
                        .groups(groups)
                        .bias(false)),
             nn::BatchNorm2d(out), nn::ReLU6(nn::ReLU6Options(true)));
}

class InvertedResidualImpl : public nn::Module {
 public:
  InvertedResidualImpl(int64_t in, int64_t out, int64_t stride, int64_t expand)
      : residual_(stride == 1 && in == out) {
    const int64_t hidden = in * expand;
    if (expand != 1) conv_->push_back(convBnAct(in, hidden, 1, 1, 1));
    conv_->push_back(convBnAct(hidden, hidden, 3, stride, hidden));
    conv_->push_back(Conv2d(nn::Conv2dOptions(hidden, out, 1).bias(false)));
    conv_->push_back(nn::BatchNorm2d(out));
    register_module("conv", conv_);
  }

  torch::Tensor forward(torch::Tensor x) {
    auto y = conv_->forward(x);
    return residual_ ? x + y : y;
  }

 private:
  bool residual_;
  Seq conv_;
};
TORCH_MODULE(InvertedResidual);

class MobileNetV2Impl : public NetImpl {
 public:
  explicit MobileNetV2Impl(int num_classes) {
    // expansion t, output channels c, repeats n, first stride s
    const int64_t settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                    {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    int64_t in = 32;
    features_->push_back(convBnAct(3, in, 3, 2, 1));
    for (const auto& s : settings) {
      for (int64_t i = 0; i < s[2]; ++i) {
        features_->push_back(InvertedResidual(in, s[1], i == 0 ? s[3] : 1, s[0]));
        in = s[1];
      }
    }
    features_->push_back(convBnAct(in, 1280, 1, 1, 1));
    register_module("features", features_);
    classifier_->push_back(nn::Dropout(0.2));
    classifier_->push_back(nn::Linear(1280, num_classes));
    register_module("classifier", classifier_);

    initialiseKaimingFanOut(*this);
  }

  torch::Tensor forward(torch::Tensor x) override {
    x = features_->forward(x);
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return classifier_->forward(x);
  }

 private:
  Seq features_;
  nn::Sequential classifier_;
};

}  // namespace

std::shared_ptr<NetImpl> makeMobileNetV2(int num_classes) {
  return std::make_shared<MobileNetV2Impl>(num_classes);
}

}  // namespace gemel::models
