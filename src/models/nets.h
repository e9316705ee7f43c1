#pragma once
// The zoo's networks: module trees with torchvision's structure, parameter names and default
// initialisation. Internal to the models module; the rest of gemel uses Model.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace gemel::models {

// A BatchNorm2d's eps and momentum (MobileNetV3 and the detectors built on it set their own).
struct BatchNormSpec {
  double eps = 0.001, momentum = 0.01;  // MobileNetV3's own; its detectors set others
};

// Base of the zoo networks: a module with a single-tensor forward.
class NetImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};

// Sequential with a concrete forward, so that Sequentials nest (torchvision nests them).
class SeqImpl : public torch::nn::SequentialImpl {
 public:
  using torch::nn::SequentialImpl::SequentialImpl;
  torch::Tensor forward(torch::Tensor x) { return torch::nn::SequentialImpl::forward(x); }
};
TORCH_MODULE(Seq);

// torch::nn::Conv2d, with two exceptions; both give the same result up to rounding.
// - On the CPU, where the output map is small for its channel count (conv2d.cpp has the limits:
//   4 positions below 256 input channels, up to 36 above in bf16, 16 for a 1x1 kernel), the
//   conv runs as one matrix product over the input's taps.
//   oneDNN's convolution backward is slow there, the weight gradient being a large product over
//   few positions: `gemel bench` of four ResNets at 64 px (layer4's maps are 2x2), batch 32
//   each, went from 75 to 117 images/s in bf16 channels_last and from 64 to 71 in fp32
//   channels_last on a 2-core AMX CPU; the demo's four classifiers (32-40 px, batch 64) from
//   about 290 to 340-375 once the product had its own backward and covered 3x3 maps.
// - Where the stride cannot matter (the strided and the unstrided convolution both give one
//   output per dimension, as a 3x3 kernel with padding 1 over a 1x1 map), the forward runs
//   unstrided. LibTorch 2.11's CPU bf16 convolution backward (autocast, contiguous or
//   channels_last) writes garbage, often NaN, into the weight gradient of a strided conv over a
//   1x1 map, in the taps that see only padding, whose gradient is 0; the unstrided conv gets them
//   right. ResNets reach 1x1 maps in layer4 at 16 px (layer3 at 8 px). The matrix product above
//   covers this case on the CPU; the unstrided conv is for other devices.
class Conv2dImpl : public torch::nn::Conv2dImpl {
 public:
  using torch::nn::Conv2dImpl::Conv2dImpl;
  torch::Tensor forward(const torch::Tensor& input);
};
TORCH_MODULE(Conv2d);

// The default initialisation torchvision's VGG, MobileNetV2 and MobileNetV3 share, over every
// submodule of `net`: convolutions Kaiming-normal (fan out, gain sqrt 2) with zero biases,
// BatchNorm weight 1 and bias 0, Linear normal(0, 0.01) with zero bias.
void initialiseKaimingFanOut(torch::nn::Module& net);

std::shared_ptr<NetImpl> makeResNet(const std::string& arch, int num_classes);

// A ResNet without its pooling and classifier (conv1, bn1, layer1..4 as torchvision names
// them): the body of torchvision's detection backbones. stages() gives layer1..4's outputs.
// (The interface of any FPN body: makeMobileNetV3FpnBody below too.)
class ResNetBodyImpl : public NetImpl {
 public:
  virtual std::vector<torch::Tensor> stages(torch::Tensor x) = 0;
  virtual std::vector<int64_t> stageChannels() const = 0;
};
std::shared_ptr<ResNetBodyImpl> makeResNetBody(const std::string& arch);
// The same interface over MobileNetV3-Large's features (fasterrcnn_mobilenet_v3_large_fpn):
// stages() gives the C4 block's and the last conv's outputs. Initialised as MobileNetV3.
std::shared_ptr<ResNetBodyImpl> makeMobileNetV3FpnBody(const BatchNormSpec& norm);

// nn.Sequential(*list(resnet.children())[:-2]): conv1, bn1, relu, maxpool, layer1..4.
torch::nn::Sequential makeResNetSequential(const std::string& arch);

// A Faster R-CNN's module tree (faster_rcnn.h) as a zoo net; ConfigError for an unknown arch or
// fewer than 2 classes.
std::shared_ptr<NetImpl> makeFasterRcnnNet(const std::string& arch, int num_classes);
std::shared_ptr<NetImpl> makeVgg(const std::string& arch, int num_classes);
std::shared_ptr<NetImpl> makeMobileNetV2(int num_classes);
// mobilenet_v3_large / mobilenet_v3_small classifiers.
std::shared_ptr<NetImpl> makeMobileNetV3(const std::string& arch, int num_classes);
// A MobileNetV3's `features` (stem, inverted residuals, last 1x1 conv), as torchvision's
// detection backbones take them: `reduced_tail` halves the C4 stage's channels, `dilated`
// dilates its three blocks instead of striding. Not initialised.
Seq makeMobileNetV3Features(const std::string& arch, bool reduced_tail, bool dilated,
                            const BatchNormSpec& norm);
// SSDlite's body: MobileNetV3-Large with the reduced tail as Sequential "0" (up to the C4
// block's expansion layer) and "1" (the rest), with torchvision's keys. Not initialised.
Seq makeSsdliteMobileNetV3Body(const BatchNormSpec& norm);
// VGG's `features` (torchvision's layers and indices), not initialised.
torch::nn::Sequential makeVggFeatures(const std::string& arch);
// inception_v3 (torchvision's Inception3 with transform_input off; AuxLogits kept, never run).
std::shared_ptr<NetImpl> makeInceptionV3(int num_classes);

}  // namespace gemel::models
