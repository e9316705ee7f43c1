// Darknet networks (the YOLOv3 family) built from a parsed cfg, with the module tree and
// parameter names of PyTorch-YOLOv3 (`pytorchyolo`): module_list.<i>.conv_<i>,
// module_list.<i>.batch_norm_<i>, ... so that its state_dicts load as they are.
#include "gemel/models/darknet_cfg.h"
#include "gemel/models/zoo.h"
#include "model_impl.h"

namespace gemel::models {

namespace {

// A yolo layer's state in PyTorch-YOLOv3: its anchors (pixels) as buffers `anchors` [na, 2]
// and `anchor_grid` [1, na, 1, 1, 2]. The heads' arithmetic is in the task's objective.
struct YoloAnchorsImpl : torch::nn::Module {
  explicit YoloAnchorsImpl(const DarknetLayer& l) {
    auto a = darknetAnchors(l);
    register_buffer("anchors", a);
    register_buffer("anchor_grid", a.clone().view({1, -1, 1, 1, 2}));
  }
  torch::Tensor forward(torch::Tensor x) { return x; }
};
TORCH_MODULE(YoloAnchors);

class DarknetImpl : public NetImpl {
 public:
  explicit DarknetImpl(DarknetNet net) : net_(std::move(net)) {
    list_ = register_module("module_list", torch::nn::ModuleList());
    for (std::size_t i = 0; i < net_.layers.size(); ++i) {
      const auto& l = net_.layers[i];
      const auto n = std::to_string(i);
      Seq seq;
      switch (l.type) {
        case DarknetLayerType::kConvolutional:
          seq->push_back("conv_" + n,
                         Conv2d(torch::nn::Conv2dOptions(l.in_channels, l.filters, l.size)
                                    .stride(l.stride)
                                    .padding(l.padding)
                                    .bias(!l.batch_normalize)));
          if (l.batch_normalize) {
            seq->push_back("batch_norm_" + n,
                           torch::nn::BatchNorm2d(
                               torch::nn::BatchNorm2dOptions(l.filters).momentum(0.1).eps(1e-5)));
          }
          if (l.activation == "leaky") {
            seq->push_back("leaky_" + n,
                           torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.1)));
          }
          break;
        case DarknetLayerType::kMaxpool:
          if (l.size == 2 && l.stride == 1) {  // keeps the map's size, as Darknet does
            seq->push_back("_debug_padding_" + n,
                           torch::nn::ZeroPad2d(torch::nn::ZeroPad2dOptions({0, 1, 0, 1})));
          }
          seq->push_back(
              "maxpool_" + n,
              torch::nn::MaxPool2d(
                  torch::nn::MaxPool2dOptions(l.size).stride(l.stride).padding((l.size - 1) / 2)));
          break;
        case DarknetLayerType::kUpsample:
          seq->push_back("upsample_" + n,
                         torch::nn::Upsample(torch::nn::UpsampleOptions()
                                                 .scale_factor(std::vector<double>{
                                                     double(l.stride), double(l.stride)})
                                                 .mode(torch::kNearest)));
          break;
        case DarknetLayerType::kYolo:
          seq->push_back("yolo_" + n, YoloAnchors(l));
          break;
        default:
          break;  // route and shortcut have no module of their own
      }
      list_->push_back(seq);
      seqs_.push_back(seq);
    }
  }

  // Every yolo head's raw output, [N, anchors * ny * nx, 5 + classes] each (anchor-major, then
  // rows, then columns), concatenated over the heads in file order.
  torch::Tensor forward(torch::Tensor x) override {
    std::vector<torch::Tensor> outs, heads;
    for (std::size_t i = 0; i < net_.layers.size(); ++i) {
      const auto& l = net_.layers[i];
      switch (l.type) {
        case DarknetLayerType::kRoute: {
          std::vector<torch::Tensor> parts;
          for (const int j : l.layers) parts.push_back(outs[j]);
          x = torch::cat(parts, 1);
          break;
        }
        case DarknetLayerType::kShortcut:
          x = outs.back() + outs[l.from];
          break;
        case DarknetLayerType::kYolo: {
          const int64_t na = static_cast<int64_t>(l.mask.size()), no = 5 + l.classes;
          const auto ny = x.size(2), nx = x.size(3);
          heads.push_back(x.view({x.size(0), na, no, ny, nx})
                              .permute({0, 1, 3, 4, 2})
                              .reshape({x.size(0), -1, no}));
          break;
        }
        default:
          x = seqs_[i]->forward(x);
      }
      outs.push_back(x);
    }
    return torch::cat(heads, 1);
  }

 private:
  DarknetNet net_;
  torch::nn::ModuleList list_{nullptr};
  std::vector<Seq> seqs_;
};

}  // namespace

std::unique_ptr<Model> createDarknetModel(const std::string& arch, const DarknetNet& net) {
  return std::make_unique<ZooModel>(arch, std::make_shared<DarknetImpl>(net));
}

}  // namespace gemel::models
