#pragma once
// The two Model implementations, internal to the models module.
#include <map>
#include <set>

#include <torch/script.h>
#include <torch/torch.h>

#include "gemel/models/model.h"
#include "nets.h"

namespace gemel::models {

// Whether `name`, missing from `given`, is a BatchNorm counter that torchvision's
// FrozenBatchNorm2d does not keep (the layer's running_mean is there).
bool frozenBatchNormCounter(const std::string& name,
                            const std::map<std::string, torch::Tensor>& given);

LayerInfo makeLayerInfo(const std::string& module, LayerKind kind, const torch::Tensor& weight,
                        const torch::Tensor& bias, const std::string& hyper);

class ZooModel : public Model {
 public:
  ZooModel(const std::string& arch, std::shared_ptr<NetImpl> net);
  ModelOutput forward(const torch::Tensor& images, const std::vector<BoxTargets>* targets) override;
  void train(bool on) override;
  void to(const torch::Device& device) override;
  StateDict namedParameters() const override;
  StateDict namedBuffers() const override;
  void setParameter(const std::string& name, const torch::Tensor& tensor) override;
  std::vector<LayerInfo> layers() const override;
  std::string headPrefix() const override;
  bool hasDropout() const override;
  void freeze(const std::vector<std::string>& prefixes,
              const std::string& batchnorm_prefix) override;

 protected:
  std::shared_ptr<NetImpl> net_;

 private:
  std::set<std::string> frozen_layers_;  // Conv2d/Linear modules whose parameters are frozen
  std::vector<std::shared_ptr<torch::nn::Module>> frozen_batchnorm_;  // always in eval mode
};

// A TorchScript module (torch.jit.script or torch.jit.trace output). Its Conv2d and Linear
// submodules are found by type name; hyper-parameters come from the module's constants, which
// scripted modules keep and traced ones do not ("hp?" then, so traced layers only share with
// traced layers of the same shape).
class ScriptModel final : public Model {
 public:
  ScriptModel(std::string path, torch::jit::Module module);
  ModelOutput forward(const torch::Tensor& images, const std::vector<BoxTargets>* targets) override;
  void train(bool on) override;
  void to(const torch::Device& device) override;
  StateDict namedParameters() const override;
  StateDict namedBuffers() const override;
  void setParameter(const std::string& name, const torch::Tensor& tensor) override;
  std::vector<LayerInfo> layers() const override;
  std::string headPrefix() const override;
  bool hasDropout() const override;

 private:
  std::string path_;
  mutable torch::jit::Module module_;
};

}  // namespace gemel::models
