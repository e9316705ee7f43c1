// MobileNetV3 (Large and Small, width 1.0) as torchvision 0.26 builds it: Conv2dNormActivation
// blocks are Sequential(conv, bn[, activation]) with BatchNorm eps 0.001 and momentum 0.01;
// inverted residuals keep their layers in `block`, with SqueezeExcitation's 1x1 convs as fc1 and
// fc2. Parameter-free layers (activations, pooling) hold Sequential indices as torchvision's do,
// so every name matches.
#include "nets.h"

#include "gemel/core/error.h"

namespace gemel::models {
namespace {

namespace nn = torch::nn;

enum class Act { kNone, kRelu, kHardswish };

nn::Functional activation(Act act) {
  if (act == Act::kRelu) return nn::Functional(torch::relu);
  return nn::Functional(static_cast<torch::Tensor (*)(const torch::Tensor&)>(torch::hardswish));
}

// torchvision's _make_divisible: round to a multiple of 8, never more than 10% down.
int64_t makeDivisible(double v, int64_t divisor = 8) {
  int64_t out =
      std::max<int64_t>(divisor, (static_cast<int64_t>(v + divisor / 2.0) / divisor) * divisor);
  if (out < 0.9 * v) out += divisor;
  return out;
}

Seq convBnAct(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups,
              int64_t dilation, Act act, const BatchNormSpec& norm) {
  Seq s(Conv2d(nn::Conv2dOptions(in, out, kernel)
                   .stride(stride)
                   .padding((kernel - 1) / 2 * dilation)
                   .dilation(dilation)
                   .groups(groups)
                   .bias(false)),
        nn::BatchNorm2d(nn::BatchNorm2dOptions(out).eps(norm.eps).momentum(norm.momentum)));
  if (act != Act::kNone) s->push_back(activation(act));
  return s;
}

// torchvision.ops.SqueezeExcitation with a Hardsigmoid scale: x * hsig(fc2(relu(fc1(avg(x))))).
class SqueezeExcitationImpl : public nn::Module {
 public:
  SqueezeExcitationImpl(int64_t channels, int64_t squeeze)
      : fc1_(register_module("fc1", Conv2d(nn::Conv2dOptions(channels, squeeze, 1)))),
        fc2_(register_module("fc2", Conv2d(nn::Conv2dOptions(squeeze, channels, 1)))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    auto scale = torch::adaptive_avg_pool2d(x, {1, 1});  // [N, C, 1, 1]
    scale = torch::hardsigmoid(fc2_->forward(torch::relu(fc1_->forward(scale))));
    return scale * x;
  }

 private:
  Conv2d fc1_, fc2_;
};
TORCH_MODULE(SqueezeExcitation);

struct BlockConfig {
  int64_t in, kernel, expanded, out;
  bool se;
  Act act;
  int64_t stride;
};

class V3InvertedResidualImpl : public nn::Module {
 public:
  V3InvertedResidualImpl(const BlockConfig& c, int64_t dilation, const BatchNormSpec& norm)
      : residual_(c.stride == 1 && c.in == c.out) {
    if (c.expanded != c.in) block_->push_back(convBnAct(c.in, c.expanded, 1, 1, 1, 1, c.act, norm));
    block_->push_back(convBnAct(c.expanded, c.expanded, c.kernel, dilation > 1 ? 1 : c.stride,
                                c.expanded, dilation, c.act, norm));
    if (c.se) block_->push_back(SqueezeExcitation(c.expanded, makeDivisible(c.expanded / 4)));
    block_->push_back(convBnAct(c.expanded, c.out, 1, 1, 1, 1, Act::kNone, norm));
    register_module("block", block_);
  }

  Seq block() const { return block_; }

  torch::Tensor forward(torch::Tensor x) {
    auto y = block_->forward(x);
    return residual_ ? y + x : y;
  }

 private:
  bool residual_;
  Seq block_;
};
TORCH_MODULE(V3InvertedResidual);

constexpr Act RE = Act::kRelu;
constexpr Act HS = Act::kHardswish;

// torchvision's _mobilenet_v3_conf (width 1.0): (in, kernel, expanded, out, SE, activation,
// stride); the last three blocks are the C4 stage that `reduced_tail` halves and `dilated`
// dilates (the detection backbones' options).
std::vector<BlockConfig> settings(const std::string& arch, bool reduced_tail) {
  const int64_t r = reduced_tail ? 2 : 1;
  if (arch == "mobilenet_v3_large") {
    return {{16, 3, 16, 16, false, RE, 1},
            {16, 3, 64, 24, false, RE, 2},
            {24, 3, 72, 24, false, RE, 1},
            {24, 5, 72, 40, true, RE, 2},
            {40, 5, 120, 40, true, RE, 1},
            {40, 5, 120, 40, true, RE, 1},
            {40, 3, 240, 80, false, HS, 2},
            {80, 3, 200, 80, false, HS, 1},
            {80, 3, 184, 80, false, HS, 1},
            {80, 3, 184, 80, false, HS, 1},
            {80, 3, 480, 112, true, HS, 1},
            {112, 3, 672, 112, true, HS, 1},
            {112, 5, 672, 160 / r, true, HS, 2},
            {160 / r, 5, 960 / r, 160 / r, true, HS, 1},
            {160 / r, 5, 960 / r, 160 / r, true, HS, 1}};
  }
  return {{16, 3, 16, 16, true, RE, 2},
          {16, 3, 72, 24, false, RE, 2},
          {24, 3, 88, 24, false, RE, 1},
          {24, 5, 96, 40, true, HS, 2},
          {40, 5, 240, 40, true, HS, 1},
          {40, 5, 240, 40, true, HS, 1},
          {40, 5, 120, 48, true, HS, 1},
          {48, 5, 144, 48, true, HS, 1},
          {48, 5, 288, 96 / r, true, HS, 2},
          {96 / r, 5, 576 / r, 96 / r, true, HS, 1},
          {96 / r, 5, 576 / r, 96 / r, true, HS, 1}};
}

class MobileNetV3Impl : public NetImpl {
 public:
  MobileNetV3Impl(const std::string& arch, int num_classes) {
    const auto blocks = settings(arch, /*reduced_tail=*/false);
    const int64_t last_channel = arch == "mobilenet_v3_large" ? 1280 : 1024;
    features_ = makeMobileNetV3Features(arch, false, false, BatchNormSpec{0.001, 0.01});
    register_module("features", features_);
    const int64_t last_conv = 6 * blocks.back().out;
    classifier_->push_back(nn::Linear(last_conv, last_channel));
    classifier_->push_back(activation(HS));
    classifier_->push_back(nn::Dropout(0.2));
    classifier_->push_back(nn::Linear(last_channel, num_classes));
    register_module("classifier", classifier_);

    initialiseKaimingFanOut(*this);
  }

  torch::Tensor forward(torch::Tensor x) override {
    x = features_->forward(x);
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);  // [N, 6 * last block's channels]
    return classifier_->forward(x);
  }

 private:
  Seq features_{nullptr};
  nn::Sequential classifier_;
};

}  // namespace

Seq makeMobileNetV3Features(const std::string& arch, bool reduced_tail, bool dilated,
                            const BatchNormSpec& norm) {
  GEMEL_ASSERT(arch == "mobilenet_v3_large" || arch == "mobilenet_v3_small",
               "not a MobileNetV3: {}", arch);
  const auto blocks = settings(arch, reduced_tail);
  const std::size_t tail = 3;  // the C4 stage's blocks, which `dilated` dilates
  Seq features;
  features->push_back(convBnAct(3, blocks.front().in, 3, 2, 1, 1, HS, norm));
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const bool in_tail = i + tail >= blocks.size();
    features->push_back(V3InvertedResidual(blocks[i], dilated && in_tail ? 2 : 1, norm));
  }
  features->push_back(convBnAct(blocks.back().out, 6 * blocks.back().out, 1, 1, 1, 1, HS, norm));
  return features;
}

namespace {
// A module of the features' own types (Seq, V3InvertedResidual, SqueezeExcitation), typed.
nn::AnyModule typed(const std::shared_ptr<nn::Module>& m) {
  if (auto s = std::dynamic_pointer_cast<SeqImpl>(m)) return nn::AnyModule(Seq(s));
  if (auto b = std::dynamic_pointer_cast<V3InvertedResidualImpl>(m))
    return nn::AnyModule(V3InvertedResidual(b));
  if (auto se = std::dynamic_pointer_cast<SqueezeExcitationImpl>(m))
    return nn::AnyModule(SqueezeExcitation(se));
  GEMEL_ASSERT(false, "unexpected MobileNetV3 module {}", m->name());
  return {};
}
void append(Seq& seq, const std::string& name, const std::shared_ptr<nn::Module>& m) {
  seq->push_back(std::string(name), typed(m));
}

// fasterrcnn_mobilenet_v3_large_fpn's body: MobileNetV3-Large's features, as torchvision's
// IntermediateLayerGetter keeps them ("0".."16"), returning the C4 block's output (features 13)
// and the last conv's (16) to the FPN.
class MobileNetV3FpnBodyImpl : public ResNetBodyImpl {
 public:
  explicit MobileNetV3FpnBodyImpl(const BatchNormSpec& norm) {
    const auto features = makeMobileNetV3Features("mobilenet_v3_large", false, false, norm);
    for (const auto& kv : features->named_children()) {
      register_module(kv.key(), kv.value());
      layers_.push_back(typed(kv.value()));
    }
    initialiseKaimingFanOut(*this);
  }
  std::vector<torch::Tensor> stages(torch::Tensor x) override {
    std::vector<torch::Tensor> out;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      x = layers_[i].forward(x);
      if (i == 13 || i + 1 == layers_.size()) out.push_back(x);  // [N, 160, ...], [N, 960, ...]
    }
    return out;
  }
  std::vector<int64_t> stageChannels() const override { return {160, 960}; }
  torch::Tensor forward(torch::Tensor x) override { return stages(x).back(); }

 private:
  std::vector<nn::AnyModule> layers_;
};
}  // namespace

std::shared_ptr<ResNetBodyImpl> makeMobileNetV3FpnBody(const BatchNormSpec& norm) {
  return std::make_shared<MobileNetV3FpnBodyImpl>(norm);
}

Seq makeSsdliteMobileNetV3Body(const BatchNormSpec& norm) {
  const auto features = makeMobileNetV3Features("mobilenet_v3_large", /*reduced_tail=*/true,
                                                /*dilated=*/false, norm);
  // torchvision's SSDLiteFeatureExtractorMobileNet: split at the C4 block (the last stride-2
  // block, features[13]) after its expansion layer; Sequential slices keep their keys.
  const std::size_t c4 = 13;
  const auto children = features->named_children();
  const auto c4_block = children[c4].value()->as<V3InvertedResidualImpl>()->block();
  const auto c4_parts = c4_block->named_children();
  Seq first, second, rest_of_c4;
  for (std::size_t i = 0; i < c4; ++i) append(first, children[i].key(), children[i].value());
  append(first, std::to_string(c4), c4_parts[0].value());
  for (std::size_t i = 1; i < c4_parts.size(); ++i)
    append(rest_of_c4, c4_parts[i].key(), c4_parts[i].value());
  second->push_back("0", rest_of_c4);
  for (std::size_t i = c4 + 1; i < children.size(); ++i)
    append(second, std::to_string(i - c4), children[i].value());
  Seq body;
  body->push_back("0", first);
  body->push_back("1", second);
  return body;
}

std::shared_ptr<NetImpl> makeMobileNetV3(const std::string& arch, int num_classes) {
  return std::make_shared<MobileNetV3Impl>(arch, num_classes);
}

}  // namespace gemel::models
