// SSD and SSDlite (ssd.h): torchvision.models.detection's SSD, step by step, over gemel's box
// ops (boxes.h, roi_ops.h) and the zoo's backbones (nets.h).
#include "gemel/models/ssd.h"

#include <torch/torch.h>

#include <array>
#include <cmath>
#include <limits>

#include "gemel/core/error.h"
#include "gemel/models/archs.h"
#include "gemel/ops/boxes.h"
#include "gemel/ops/roi_ops.h"
#include "model_impl.h"
#include "nets.h"

namespace gemel::models {
namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;
using torch::Tensor;
using Size2 = std::array<int64_t, 2>;  // (height, width)

constexpr double kSsdliteMomentum = 0.03;

Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0,
            int64_t dilation = 1, int64_t groups = 1, bool bias = true) {
  return Conv2d(nn::Conv2dOptions(in, out, kernel)
                    .stride(stride)
                    .padding(padding)
                    .dilation(dilation)
                    .groups(groups)
                    .bias(bias));
}
nn::Functional relu() { return nn::Functional(torch::relu); }
nn::Functional relu6() {
  return nn::Functional([](const Tensor& x) { return torch::clamp(x, 0.0, 6.0); });
}

// Conv2dNormActivation with ReLU6 and SSDlite's BatchNorm.
Seq convBnRelu6(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups) {
  return Seq(conv(in, out, kernel, stride, (kernel - 1) / 2, 1, groups, false),
             nn::BatchNorm2d(nn::BatchNorm2dOptions(out).eps(0.001).momentum(kSsdliteMomentum)),
             relu6());
}

// Appends one of VGG's layers (conv, ReLU, max-pool) under `name`.
void append(Seq& seq, const std::string& name, const std::shared_ptr<nn::Module>& m) {
  if (auto c = std::dynamic_pointer_cast<nn::Conv2dImpl>(m)) {
    seq->push_back(std::string(name), nn::Conv2d(c));
  } else if (auto r = std::dynamic_pointer_cast<nn::ReLUImpl>(m)) {
    seq->push_back(std::string(name), nn::ReLU(r));
  } else if (auto p = std::dynamic_pointer_cast<nn::MaxPool2dImpl>(m)) {
    seq->push_back(std::string(name), nn::MaxPool2d(p));
  } else {
    GEMEL_ASSERT(false, "unexpected VGG layer {}", m->name());
  }
}

// Backbones: the batch -> the feature maps the heads read, in order.
class SsdBackboneImpl : public nn::Module {
 public:
  virtual std::vector<Tensor> forward(const Tensor& x) = 0;
  virtual std::vector<int64_t> channels() const = 0;
};

// SSDFeatureExtractorVGG (highres off) over VGG-16's features.
class VggExtractorImpl : public SsdBackboneImpl {
 public:
  VggExtractorImpl() {
    scale_weight_ = register_parameter("scale_weight", torch::full({512}, 20.0));
    auto vgg = makeVggFeatures("vgg16");  // conv1_1 .. maxpool5: 31 layers
    const auto layers = vgg->named_children();
    // maxpool3 rounds up (ceil_mode), so that 300 px gives 38x38 maps at conv4_3.
    layers[16].value()->as<nn::MaxPool2d>()->options.ceil_mode(true);
    for (std::size_t i = 0; i < 23; ++i) append(features_, layers[i].key(), layers[i].value());
    register_module("features", features_);
    Seq first;  // maxpool4 .. conv5_3 (VGG's 23..29), then fc6 (atrous) and fc7
    for (std::size_t i = 23; i < 30; ++i) append(first, std::to_string(i - 23), layers[i].value());
    Seq fc(nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(1).padding(1)), conv(512, 1024, 3, 1, 6, 6),
           relu(), conv(1024, 1024, 1), relu());
    first->push_back("7", fc);
    blocks_ = {first, Seq(conv(1024, 256, 1), relu(), conv(256, 512, 3, 2, 1), relu()),  // conv8_2
               Seq(conv(512, 128, 1), relu(), conv(128, 256, 3, 2, 1), relu()),          // conv9_2
               Seq(conv(256, 128, 1), relu(), conv(128, 256, 3), relu()),                // conv10_2
               Seq(conv(256, 128, 1), relu(), conv(128, 256, 3), relu())};               // conv11_2
    for (std::size_t i = 0; i < blocks_.size(); ++i) extra_->push_back(blocks_[i]);
    register_module("extra", extra_);

    // VGG's init for its layers (conv5 too); Xavier for fc6/fc7 and the extra blocks.
    torch::NoGradGuard no_grad;
    for (const auto& m : vgg->modules(false)) {
      if (auto* c = m->as<nn::Conv2d>()) {
        nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
        nn::init::zeros_(c->bias);
      }
    }
    std::vector<std::shared_ptr<nn::Module>> xavier{fc.ptr()};
    for (std::size_t i = 1; i < blocks_.size(); ++i) xavier.push_back(blocks_[i].ptr());
    for (const auto& part : xavier) {
      for (const auto& m : part->modules(false)) {
        if (auto* c = m->as<nn::Conv2d>()) {
          nn::init::xavier_uniform_(c->weight);
          nn::init::zeros_(c->bias);
        }
      }
    }
  }

  std::vector<Tensor> forward(const Tensor& input) override {
    auto x = features_->forward(input);  // conv4_3: [N, 512, 38, 38] at 300 px
    std::vector<Tensor> out{scale_weight_.view({1, -1, 1, 1}) *
                            F::normalize(x, F::NormalizeFuncOptions().dim(1))};
    for (auto& block : blocks_) {
      x = block->forward(x);
      out.push_back(x);
    }
    return out;
  }
  std::vector<int64_t> channels() const override { return {512, 1024, 512, 256, 256, 256}; }

 private:
  Tensor scale_weight_;
  Seq features_;
  nn::Sequential extra_;
  std::vector<Seq> blocks_;
};

// SSDLiteFeatureExtractorMobileNet over MobileNetV3-Large (reduced tail).
class MobileNetExtractorImpl : public SsdBackboneImpl {
 public:
  MobileNetExtractorImpl() {
    features_ = register_module("features",
                                makeSsdliteMobileNetV3Body(BatchNormSpec{0.001, kSsdliteMomentum}));
    const int64_t depth[5] = {480, 512, 256, 256, 128};
    for (int i = 0; i < 4; ++i) {  // _extra_block: 1x1 down to half, depthwise 3x3 s2, 1x1 up
      const int64_t mid = depth[i + 1] / 2;
      blocks_.push_back(Seq(convBnRelu6(depth[i], mid, 1, 1, 1), convBnRelu6(mid, mid, 3, 2, mid),
                            convBnRelu6(mid, depth[i + 1], 1, 1, 1)));
      extra_->push_back(blocks_.back());
    }
    register_module("extra", extra_);
  }

  std::vector<Tensor> forward(const Tensor& input) override {
    std::vector<Tensor> out;
    auto x = input;
    for (const auto& part : features_->children()) {
      x = part->as<SeqImpl>()->forward(x);  // C4's expansion [N, 672, ...]; the last conv [N, 480]
      out.push_back(x);
    }
    for (auto& block : blocks_) {
      x = block->forward(x);
      out.push_back(x);
    }
    return out;
  }
  std::vector<int64_t> channels() const override { return {672, 480, 512, 256, 256, 128}; }

 private:
  Seq features_{nullptr};
  nn::Sequential extra_;
  std::vector<Seq> blocks_;
};

// SSDScoringHead: one layer per map; outputs [N, sum of H * W * A, columns], map by map,
// location-major, anchor-minor.
class ScoringHeadImpl : public nn::Module {
 public:
  ScoringHeadImpl(nn::Sequential list, int64_t columns) : list_(list), columns_(columns) {
    register_module("module_list", list_);
  }
  Tensor forward(const std::vector<Tensor>& maps) {
    std::vector<Tensor> all;
    for (std::size_t i = 0; i < maps.size(); ++i) {
      const auto layer = list_->ptr(i);  // SSD: a conv; SSDlite: a prediction block
      const auto block = std::dynamic_pointer_cast<SeqImpl>(layer);
      const auto y = block ? block->forward(maps[i])
                           : std::dynamic_pointer_cast<Conv2dImpl>(layer)->forward(maps[i]);
      const int64_t n = y.size(0), h = y.size(2), w = y.size(3);
      all.push_back(
          y.view({n, -1, columns_, h, w}).permute({0, 3, 4, 1, 2}).reshape({n, -1, columns_}));
    }
    return torch::cat(all, 1);
  }

 private:
  nn::Sequential list_;
  int64_t columns_;
};
TORCH_MODULE(ScoringHead);

class SsdHeadImpl : public nn::Module {
 public:
  SsdHeadImpl(bool lite, const std::vector<int64_t>& channels, const std::vector<int64_t>& anchors,
              int64_t num_classes) {
    auto layers = [&](int64_t columns) {
      nn::Sequential list;
      for (std::size_t i = 0; i < channels.size(); ++i) {
        const auto c = channels[i], out = columns * anchors[i];
        if (lite) {  // _prediction_block: depthwise 3x3 + BatchNorm + ReLU6, then a 1x1 conv
          list->push_back(Seq(convBnRelu6(c, c, 3, 1, c), conv(c, out, 1)));
        } else {
          list->push_back(conv(c, out, 3, 1, 1));
        }
      }
      return list;
    };
    cls = register_module("classification_head", ScoringHead(layers(num_classes), num_classes));
    reg = register_module("regression_head", ScoringHead(layers(4), 4));
  }
  ScoringHead cls{nullptr}, reg{nullptr};
};
TORCH_MODULE(SsdHead);

// DefaultBoxGenerator: scales and aspect ratios per map; steps (SSD300) or the map's own grid
// (SSDlite) place the centres.
struct DefaultBoxes {
  std::vector<std::vector<double>> aspect_ratios;
  std::vector<double> scales;  // one more than maps
  std::vector<double> steps;   // empty: the grid
  std::vector<int64_t> perLocation() const {
    std::vector<int64_t> out;
    for (const auto& r : aspect_ratios) out.push_back(2 + 2 * static_cast<int64_t>(r.size()));
    return out;
  }

  // [sum over maps of H * W * A, 4] (x1, y1, x2, y2) in the input's pixels.
  Tensor operator()(Size2 image, const std::vector<Size2>& maps) const {
    std::vector<Tensor> all;
    for (std::size_t k = 0; k < maps.size(); ++k) {
      std::vector<float> wh;  // torchvision's _wh_pairs, computed in double, stored as float
      const double s = scales[k], s_prime = std::sqrt(scales[k] * scales[k + 1]);
      wh.insert(wh.end(), {static_cast<float>(s), static_cast<float>(s),
                           static_cast<float>(s_prime), static_cast<float>(s_prime)});
      for (const double ar : aspect_ratios[k]) {
        const auto w = static_cast<float>(s * std::sqrt(ar)),
                   h = static_cast<float>(s / std::sqrt(ar));
        wh.insert(wh.end(), {w, h, h, w});
      }
      const auto pairs = torch::tensor(wh).view({-1, 2}).clamp(0, 1);  // clip
      const int64_t p = pairs.size(0);
      const double fy = steps.empty() ? maps[k][0] : image[0] / steps[k];
      const double fx = steps.empty() ? maps[k][1] : image[1] / steps[k];
      const auto xs = (torch::arange(maps[k][1]) + 0.5) / fx;
      const auto ys = (torch::arange(maps[k][0]) + 0.5) / fy;
      const auto grid = torch::meshgrid({ys, xs}, "ij");
      const auto centres = torch::stack({grid[1].reshape(-1), grid[0].reshape(-1)}, 1)  // [HW, 2]
                               .repeat_interleave(p, 0);
      all.push_back(torch::cat({centres, pairs.repeat({maps[k][0] * maps[k][1], 1})}, 1));
    }
    const auto boxes = torch::cat(all, 0);  // (cx, cy, w, h) relative
    const auto xy = boxes.narrow(1, 0, 2), half = 0.5 * boxes.narrow(1, 2, 2);
    const auto size = torch::tensor({image[1], image[0]});
    return torch::cat({(xy - half) * size, (xy + half) * size}, 1);
  }
};

class SsdNet : public NetImpl {
 public:
  SsdNet(const std::string& arch, int64_t num_classes) : lite(arch != "ssd300_vgg16") {
    if (lite) {
      backbone = register_module("backbone", std::make_shared<MobileNetExtractorImpl>());
      boxes.aspect_ratios.assign(6, {2, 3});
      for (int k = 0; k < 6; ++k) boxes.scales.push_back(0.2 + 0.75 * k / 5.0);
      boxes.scales.push_back(1.0);
    } else {
      backbone = register_module("backbone", std::make_shared<VggExtractorImpl>());
      boxes.aspect_ratios = {{2}, {2, 3}, {2, 3}, {2, 3}, {2}, {2}};
      boxes.scales = {0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05};
      boxes.steps = {8, 16, 32, 64, 100, 300};
    }
    head = register_module("head",
                           SsdHead(lite, backbone->channels(), boxes.perLocation(), num_classes));
    // SSD: _xavier_init of the head (its backbone initialised itself); SSDlite: _normal_init
    // of every conv, the backbone's too (torchvision's choice without a pretrained backbone).
    torch::NoGradGuard no_grad;
    for (const auto& m : lite ? modules(false) : head->modules(false)) {
      auto* c = m->as<nn::Conv2d>();
      if (!c) continue;
      if (lite) {
        nn::init::normal_(c->weight, 0.0, 0.03);
      } else {
        nn::init::xavier_uniform_(c->weight);
      }
      if (c->bias.defined()) nn::init::zeros_(c->bias);
    }
  }

  Tensor forward(Tensor) override {
    throw InputError(
        "an SSD runs on images and, while training, their boxes; it returns losses or "
        "detections, not one tensor (run it through its Model)");
  }

  bool lite;
  std::shared_ptr<SsdBackboneImpl> backbone;
  SsdHead head{nullptr};
  DefaultBoxes boxes;
};

// The zoo model of an SSD's module tree, whose forward runs the detector.
class SsdModel final : public ZooModel {
 public:
  SsdModel(const std::string& arch, std::shared_ptr<SsdNet> net, SsdSettings settings)
      : ZooModel(arch, net), ssd_(std::move(net)), s_(std::move(settings)) {}

  bool takesTargets() const override { return true; }

  ModelOutput forward(const Tensor& images, const std::vector<BoxTargets>* targets_in) override {
    GEMEL_THROW_IF_NOT(images.dim() == 4 && images.size(1) == 3 && images.is_floating_point(),
                       InputError, "SSD: images {}; expected [N, 3, H, W] floats in [0, 1]",
                       images.sizes());
    const bool training = ssd_->is_training();
    const auto* targets = training ? targets_in : nullptr;
    GEMEL_THROW_IF_NOT(!training || targets, InputError,
                       "SSD: training needs each image's boxes and labels");
    const int64_t n = images.size(0);
    const Size2 original{images.size(2), images.size(3)};
    // GeneralizedRCNNTransform with fixed_size: normalise, then resize to size x size (every
    // image of a batch has the batch's size, so one interpolation serves them all).
    const auto mean = torch::tensor(s_.image_mean, torch::kDouble).to(images.options());
    const auto std = torch::tensor(s_.image_std, torch::kDouble).to(images.options());
    auto x = (images - mean.view({1, -1, 1, 1})) / std.view({1, -1, 1, 1});
    if (training) {  // torchvision's torch_choice over min_size: one draw per image
      for (int64_t i = 0; i < n; ++i) torch::empty({1}).uniform_(0.0, 1.0);
    }
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{s_.size, s_.size})
                              .mode(torch::kBilinear)
                              .align_corners(false));
    const Size2 resized{s_.size, s_.size};
    const auto maps = ssd_->backbone->forward(x);
    const auto cls_logits = ssd_->head->cls->forward(maps);  // [N, A, K]
    const auto regression = ssd_->head->reg->forward(maps);  // [N, A, 4]
    std::vector<Size2> grids;
    for (const auto& m : maps) grids.push_back({m.size(2), m.size(3)});
    const auto anchors = ssd_->boxes(resized, grids).to(cls_logits.options());  // [A, 4]
    ModelOutput out;
    if (training) {
      GEMEL_THROW_IF_NOT(static_cast<int64_t>(targets->size()) == n, InputError,
                         "SSD: {} images and {} targets", n, targets->size());
      std::vector<BoxTargets> scaled;
      for (const auto& t : *targets)
        scaled.push_back({ops::resizeBoxes(t.boxes, original, resized), t.labels});
      losses(scaled, cls_logits, regression, anchors, out);
    } else {
      postprocess(cls_logits, regression, anchors, out);
      for (auto& d : out.detections) d.boxes = ops::resizeBoxes(d.boxes, resized, original);
    }
    return out;
  }

 private:
  // compute_loss: SSDMatcher per image, smooth-L1 over the matched boxes, cross-entropy over
  // the positives and the hardest negatives (3 per positive), both over the positives' count.
  void losses(const std::vector<BoxTargets>& targets, const Tensor& cls_logits,
              const Tensor& regression, const Tensor& anchors, ModelOutput& out) const {
    const ops::BoxCoder coder{{10, 10, 5, 5}};
    const ops::Matcher matcher{s_.iou_thresh, s_.iou_thresh, false};
    int64_t foreground = 0;
    std::vector<Tensor> box_losses, cls_targets;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      const auto& t = targets[i];
      auto matched =
          torch::full({anchors.size(0)}, int64_t{-1},
                      torch::TensorOptions().dtype(torch::kLong).device(anchors.device()));
      if (t.boxes.size(0) > 0) {
        const auto quality = ops::boxIou(t.boxes, anchors);  // [G, A]
        matched = matcher(quality);
        const auto best = std::get<1>(quality.max(1));  // each box's best default box
        matched.index_put_({best}, torch::arange(best.size(0), matched.options()));
      }
      const auto fg = torch::where(matched >= 0)[0];
      const auto fg_matched = matched.index_select(0, fg);
      foreground += fg.size(0);
      const auto codes =
          coder.encode(t.boxes.index_select(0, fg_matched), anchors.index_select(0, fg));
      box_losses.push_back(
          F::smooth_l1_loss(regression[static_cast<int64_t>(i)].index_select(0, fg), codes,
                            F::SmoothL1LossFuncOptions().reduction(torch::kSum)));
      auto classes = torch::zeros({cls_logits.size(1)}, t.labels.options());
      classes.index_put_({fg}, t.labels.index_select(0, fg_matched));
      cls_targets.push_back(classes);
    }
    const auto bbox = torch::stack(box_losses);
    const auto labels = torch::stack(cls_targets);  // [N, A]
    const int64_t k = cls_logits.size(-1);
    const auto cls = F::cross_entropy(cls_logits.reshape({-1, k}), labels.reshape(-1),
                                      F::CrossEntropyFuncOptions().reduction(torch::kNone))
                         .view(labels.sizes());
    const auto positive = labels > 0;
    const double ratio = (1.0 - s_.positive_fraction) / s_.positive_fraction;
    const auto negatives = ratio * positive.sum(1, true);
    auto negative_loss = cls.clone();
    negative_loss.index_put_({positive}, -std::numeric_limits<double>::infinity());
    const auto order = std::get<1>(negative_loss.sort(1, true));
    const auto background = std::get<1>(order.sort(1)) < negatives;
    const double norm = static_cast<double>(std::max<int64_t>(1, foreground));
    out.losses = {
        {"bbox_regression", bbox.sum() / norm},
        {"classification", (cls.index({positive}).sum() + cls.index({background}).sum()) / norm}};
  }

  // postprocess_detections: softmax scores; per class but the background, the boxes above the
  // score threshold, the top-k of them; class-wise NMS; the best detections_per_img.
  void postprocess(const Tensor& cls_logits, const Tensor& regression, const Tensor& anchors,
                   ModelOutput& out) const {
    const ops::BoxCoder coder{{10, 10, 5, 5}};
    const auto scores_all = torch::softmax(cls_logits, -1);
    for (int64_t i = 0; i < cls_logits.size(0); ++i) {
      auto decoded = coder.decode(regression[i], anchors).reshape({-1, 4});
      decoded = ops::clipBoxesToImage(decoded, s_.size, s_.size);
      std::vector<Tensor> boxes, scores, labels;
      for (int64_t label = 1; label < cls_logits.size(-1); ++label) {
        auto score = scores_all[i].select(1, label);
        const auto keep = score > s_.score_thresh;
        score = score.index({keep});
        auto box = decoded.index({keep});
        const auto [top, idx] = score.topk(std::min(s_.topk_candidates, score.size(0)));
        boxes.push_back(box.index_select(0, idx));
        scores.push_back(top);
        labels.push_back(torch::full_like(top, label, torch::kLong));
      }
      const auto b = torch::cat(boxes), sc = torch::cat(scores), lb = torch::cat(labels);
      auto keep = ops::batchedNms(b, sc, lb, s_.nms_thresh);
      keep = keep.narrow(0, 0, std::min(s_.detections_per_img, keep.size(0)));
      out.detections.push_back(
          {b.index_select(0, keep), sc.index_select(0, keep), lb.index_select(0, keep)});
    }
  }

  std::shared_ptr<SsdNet> ssd_;
  SsdSettings s_;
};

}  // namespace

SsdSettings ssdSettingsFor(const std::string& arch, int image_size, const std::vector<double>& mean,
                           const std::vector<double>& std) {
  SsdSettings s;
  if (arch != "ssd300_vgg16") {  // ssdlite320_mobilenet_v3_large's defaults
    s.score_thresh = 0.001;
    s.nms_thresh = 0.55;
    s.detections_per_img = 300;
    s.topk_candidates = 300;
  }
  s.size = image_size;
  s.image_mean = mean;
  s.image_std = std;
  return s;
}

std::unique_ptr<Model> makeSsdModel(const std::string& arch, int num_classes,
                                    const SsdSettings& settings) {
  GEMEL_THROW_IF_NOT(isSsdArch(arch), ConfigError, "arch '{}' is not an SSD; use one of: {}", arch,
                     ssdArchList());
  GEMEL_THROW_IF_NOT(num_classes >= 2, ConfigError,
                     "arch '{}': {} classes with the background; an SSD needs at least one object "
                     "class",
                     arch, num_classes);
  return std::make_unique<SsdModel>(arch, std::make_shared<SsdNet>(arch, num_classes), settings);
}

}  // namespace gemel::models
