// ResNet-18/34/50/101/152 as torchvision 0.14 builds them (v1.5: stride on the 3x3 conv of
// Bottleneck), with the same module names so state_dicts load both ways.
#include <map>
#include <vector>

#include "gemel/core/error.h"
#include "nets.h"

namespace gemel::models {
namespace {

namespace nn = torch::nn;

Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  return Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false));
}

// One residual block; `bottleneck` selects torchvision's Bottleneck over BasicBlock.
class BlockImpl : public nn::Module {
 public:
  BlockImpl(bool bottleneck, int64_t in, int64_t planes, int64_t stride, bool downsample)
      : bottleneck_(bottleneck) {
    const int64_t out = planes * (bottleneck ? 4 : 1);
    if (bottleneck) {
      conv1_ = register_module("conv1", conv(in, planes, 1, 1, 0));
      bn1_ = register_module("bn1", nn::BatchNorm2d(planes));
      conv2_ = register_module("conv2", conv(planes, planes, 3, stride, 1));
      bn2_ = register_module("bn2", nn::BatchNorm2d(planes));
      conv3_ = register_module("conv3", conv(planes, out, 1, 1, 0));
      bn3_ = register_module("bn3", nn::BatchNorm2d(out));
    } else {
      conv1_ = register_module("conv1", conv(in, planes, 3, stride, 1));
      bn1_ = register_module("bn1", nn::BatchNorm2d(planes));
      conv2_ = register_module("conv2", conv(planes, planes, 3, 1, 1));
      bn2_ = register_module("bn2", nn::BatchNorm2d(planes));
    }
    if (downsample) {
      downsample_ =
          register_module("downsample", Seq(conv(in, out, 1, stride, 0), nn::BatchNorm2d(out)));
    }
  }

  torch::Tensor forward(torch::Tensor x) {
    auto out = torch::relu(bn1_(conv1_(x)));
    out = bn2_(conv2_(out));
    if (bottleneck_) out = bn3_(conv3_(torch::relu(out)));
    out = out + (downsample_ ? downsample_(x) : x);
    return torch::relu(out);
  }

 private:
  bool bottleneck_;
  Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr};
  Seq downsample_{nullptr};
};
TORCH_MODULE(Block);

// num_classes 0: the body only (no fc), for detection backbones.
class ResNetImpl : public ResNetBodyImpl {
 public:
  ResNetImpl(bool bottleneck, const std::vector<int>& blocks, int num_classes) {
    conv1_ = register_module("conv1", conv(3, 64, 7, 2, 3));
    bn1_ = register_module("bn1", nn::BatchNorm2d(64));
    const int64_t expansion = bottleneck ? 4 : 1;
    int64_t in = 64;
    const int64_t planes[4] = {64, 128, 256, 512};
    for (int stage = 0; stage < 4; ++stage) {
      Seq layer;
      const int64_t stride = stage == 0 ? 1 : 2;
      for (int b = 0; b < blocks[stage]; ++b) {
        const int64_t s = b == 0 ? stride : 1;
        const bool downsample = b == 0 && (s != 1 || in != planes[stage] * expansion);
        layer->push_back(Block(bottleneck, in, planes[stage], s, downsample));
        in = planes[stage] * expansion;
      }
      layers_[stage] = register_module("layer" + std::to_string(stage + 1), layer);
    }
    for (int stage = 0; stage < 4; ++stage) channels_.push_back(planes[stage] * expansion);
    if (num_classes > 0) fc_ = register_module("fc", nn::Linear(512 * expansion, num_classes));

    // torchvision: Kaiming-normal (fan_out, relu) convolutions, unit BatchNorm; fc keeps
    // nn.Linear's default initialisation.
    for (auto& m : modules(/*include_self=*/false)) {
      if (auto* c = m->as<nn::Conv2d>()) {
        nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
      } else if (auto* bn = m->as<nn::BatchNorm2d>()) {
        nn::init::ones_(bn->weight);
        nn::init::zeros_(bn->bias);
      }
    }
  }

  torch::Tensor forward(torch::Tensor x) override {
    GEMEL_ASSERT(!fc_.is_empty(), "the forward of a ResNet body (it has no classifier)");
    x = torch::adaptive_avg_pool2d(stages(x).back(), {1, 1}).flatten(1);
    return fc_(x);
  }

  std::vector<torch::Tensor> stages(torch::Tensor x) override {
    x = torch::relu(bn1_(conv1_(x)));
    x = torch::max_pool2d(x, 3, 2, 1);
    std::vector<torch::Tensor> out;
    for (auto& layer : layers_) out.push_back(x = layer(x));
    return out;
  }
  std::vector<int64_t> stageChannels() const override { return channels_; }

  // nn.Sequential(*list(children())[:-2]): conv1, bn1, relu, maxpool, layer1..4.
  nn::Sequential sequential() const {
    nn::Sequential seq;
    seq->push_back(conv1_);
    seq->push_back(bn1_);
    seq->push_back(nn::ReLU(nn::ReLUOptions(true)));
    seq->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1)));
    for (const auto& layer : layers_) seq->push_back(layer);
    return seq;
  }

 private:
  std::vector<int64_t> channels_;
  Conv2d conv1_{nullptr};
  nn::BatchNorm2d bn1_{nullptr};
  Seq layers_[4] = {Seq{nullptr}, Seq{nullptr}, Seq{nullptr}, Seq{nullptr}};
  nn::Linear fc_{nullptr};
};

std::shared_ptr<ResNetImpl> buildResNet(const std::string& arch, int num_classes) {
  static const std::map<std::string, std::pair<bool, std::vector<int>>> specs = {
      {"resnet18", {false, {2, 2, 2, 2}}},  {"resnet34", {false, {3, 4, 6, 3}}},
      {"resnet50", {true, {3, 4, 6, 3}}},   {"resnet101", {true, {3, 4, 23, 3}}},
      {"resnet152", {true, {3, 8, 36, 3}}},
  };
  const auto it = specs.find(arch);
  GEMEL_ASSERT(it != specs.end(), "a ResNet built as '{}'", arch);
  return std::make_shared<ResNetImpl>(it->second.first, it->second.second, num_classes);
}

}  // namespace

std::shared_ptr<NetImpl> makeResNet(const std::string& arch, int num_classes) {
  return buildResNet(arch, num_classes);
}

std::shared_ptr<ResNetBodyImpl> makeResNetBody(const std::string& arch) {
  return buildResNet(arch, 0);
}

nn::Sequential makeResNetSequential(const std::string& arch) {
  return buildResNet(arch, 0)->sequential();
}

}  // namespace gemel::models
