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

std::shared_ptr<NetImpl> makeResNet(const std::string& arch, int num_classes);
std::shared_ptr<NetImpl> makeVgg(const std::string& arch, int num_classes);
std::shared_ptr<NetImpl> makeMobileNetV2(int num_classes);

}  // namespace gemel::models
