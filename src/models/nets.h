#pragma once
// The zoo's networks: module trees with torchvision's structure, parameter names and default
// initialisation. Internal to the models module; the rest of gemel uses Model.
#include <torch/torch.h>

#include <memory>
#include <string>

namespace gemel::models {

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

// torch::nn::Conv2d, except where the stride cannot matter: when the map is so small that the
// strided and the unstrided convolution both give one output per dimension (a 1x1 map under a
// 3x3 kernel with padding 1), the forward runs unstrided. The result is the same. The reason is
// LibTorch 2.11's CPU bf16 convolution backward (autocast, contiguous or channels_last):
// on a strided conv over a 1x1 map it writes garbage, often NaN, into the weight gradient of
// the taps that see only padding, whose gradient is 0; the unstrided conv gets them right.
// ResNets reach 1x1 maps in layer4 at 16 px (layer3 at 8 px), and those weights would be
// corrupted by training.
class Conv2dImpl : public torch::nn::Conv2dImpl {
 public:
  using torch::nn::Conv2dImpl::Conv2dImpl;
  torch::Tensor forward(const torch::Tensor& input);
};
TORCH_MODULE(Conv2d);

std::shared_ptr<NetImpl> makeResNet(const std::string& arch, int num_classes);
std::shared_ptr<NetImpl> makeVgg(const std::string& arch, int num_classes);
std::shared_ptr<NetImpl> makeMobileNetV2(int num_classes);

}  // namespace gemel::models
