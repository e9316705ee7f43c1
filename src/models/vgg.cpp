// VGG-11/13/16/19 with and without BatchNorm, as torchvision 0.14 builds them. Activation and
// pooling layers are real modules inside `features` and `classifier` because torchvision's
// parameter names count them ("features.3.weight", "classifier.6.weight").
#include <map>
#include <vector>

#include "gemel/core/error.h"
#include "nets.h"

namespace gemel::models {
namespace {

namespace nn = torch::nn;
constexpr int kPool = 0;  // "M" in torchvision's configuration lists

const std::vector<int>& vggConfig(const std::string& depth) {
  static const std::map<std::string, std::vector<int>> cfgs = {
      {"11", {64, kPool, 128, kPool, 256, 256, kPool, 512, 512, kPool, 512, 512, kPool}},
      {"13", {64, 64, kPool, 128, 128, kPool, 256, 256, kPool, 512, 512, kPool, 512, 512, kPool}},
      {"16",
       {64, 64, kPool, 128, 128, kPool, 256, 256, 256, kPool, 512, 512, 512, kPool, 512, 512, 512,
        kPool}},
      {"19", {64,  64,  kPool, 128, 128,   kPool, 256, 256, 256, 256,  kPool,
              512, 512, 512,   512, kPool, 512,   512, 512, 512, kPool}},
  };
  const auto it = cfgs.find(depth);
  GEMEL_ASSERT(it != cfgs.end(), "no VGG depth '{}'", depth);
  return it->second;
}

nn::Sequential vggFeatures(const std::vector<int>& cfg, bool batch_norm) {
  nn::Sequential features;
  int64_t in = 3;
  for (const int v : cfg) {
    if (v == kPool) {
      features->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(2)));
      continue;
    }
    features->push_back(nn::Conv2d(nn::Conv2dOptions(in, v, 3).padding(1)));
    if (batch_norm) features->push_back(nn::BatchNorm2d(v));
    features->push_back(nn::ReLU(nn::ReLUOptions(true)));
    in = v;
  }
  return features;
}

class VggImpl : public NetImpl {
 public:
  VggImpl(const std::vector<int>& cfg, bool batch_norm, int num_classes)
      : features_(vggFeatures(cfg, batch_norm)) {
    register_module("features", features_);
    classifier_->push_back(nn::Linear(512 * 7 * 7, 4096));
    classifier_->push_back(nn::ReLU(nn::ReLUOptions(true)));
    classifier_->push_back(nn::Dropout(0.5));
    classifier_->push_back(nn::Linear(4096, 4096));
    classifier_->push_back(nn::ReLU(nn::ReLUOptions(true)));
    classifier_->push_back(nn::Dropout(0.5));
    classifier_->push_back(nn::Linear(4096, num_classes));
    register_module("classifier", classifier_);

    initialiseKaimingFanOut(*this);
  }

  torch::Tensor forward(torch::Tensor x) override {
    x = features_->forward(x);
    x = torch::adaptive_avg_pool2d(x, {7, 7}).flatten(1);
    return classifier_->forward(x);
  }

 private:
  nn::Sequential features_;
  nn::Sequential classifier_;
};

}  // namespace

nn::Sequential makeVggFeatures(const std::string& arch) {
  const bool bn = arch.size() > 3 && arch.compare(arch.size() - 3, 3, "_bn") == 0;
  return vggFeatures(vggConfig(arch.substr(3, 2)), bn);
}

std::shared_ptr<NetImpl> makeVgg(const std::string& arch, int num_classes) {
  // "vgg16" or "vgg16_bn"
  const bool bn = arch.size() > 3 && arch.compare(arch.size() - 3, 3, "_bn") == 0;
  const auto depth = arch.substr(3, 2);
  return std::make_shared<VggImpl>(vggConfig(depth), bn, num_classes);
}

}  // namespace gemel::models
