// Faster R-CNN (faster_rcnn.h): torchvision.models.detection's FasterRCNN, step by step, over
// gemel's ops (roi_ops.h, boxes.h) and the zoo's backbones (nets.h).
#include "gemel/models/faster_rcnn.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "gemel/core/error.h"
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

constexpr const char* kFpnArch = "fasterrcnn_resnet50_fpn";
constexpr const char* kPlainPrefix = "fasterrcnn:";

// fasterrcnn_mobilenet_v3_large_fpn and its _320_ variant (the same model, other defaults).
bool mobileFpn(const std::string& arch) {
  return arch == "fasterrcnn_mobilenet_v3_large_fpn" ||
         arch == "fasterrcnn_mobilenet_v3_large_320_fpn";
}

// torchvision's FeaturePyramidNetwork with LastLevelMaxPool: 1x1 lateral convolutions
// (inner_blocks.<i>.0), 3x3 output convolutions (layer_blocks.<i>.0), nearest upsampling
// top-down, and a stride-2 max pool of the last output as the extra level.
class FpnImpl : public nn::Module {
 public:
  FpnImpl(const std::vector<int64_t>& in_channels, int64_t out) {
    nn::ModuleList inner_list, layer_list;
    for (const int64_t c : in_channels) {
      nn::Sequential inner, layer;
      inner->push_back(nn::Conv2d(nn::Conv2dOptions(c, out, 1)));
      layer->push_back(nn::Conv2d(nn::Conv2dOptions(out, out, 3).padding(1)));
      inner_list->push_back(inner);
      layer_list->push_back(layer);
      inner_.push_back(inner);
      layer_.push_back(layer);
    }
    register_module("inner_blocks", inner_list);
    register_module("layer_blocks", layer_list);
    for (auto& m : modules(/*include_self=*/false)) {
      if (auto* conv = m->as<nn::Conv2d>()) {
        nn::init::kaiming_uniform_(conv->weight, /*a=*/1);
        nn::init::zeros_(conv->bias);
      }
    }
  }

  std::vector<Tensor> forward(const std::vector<Tensor>& x) {
    const int last = static_cast<int>(x.size()) - 1;
    auto inner = inner_[last]->forward(x[last]);
    std::vector<Tensor> results{layer_[last]->forward(inner)};
    for (int i = last - 1; i >= 0; --i) {
      const auto lateral = inner_[i]->forward(x[i]);
      const auto top_down =
          F::interpolate(inner, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{lateral.size(2), lateral.size(3)})
                                    .mode(torch::kNearest));
      inner = lateral + top_down;
      results.insert(results.begin(), layer_[i]->forward(inner));
    }
    results.push_back(torch::max_pool2d(results.back(), 1, 2, 0));  // level "pool"
    return results;
  }

 private:
  std::vector<nn::Sequential> inner_, layer_;
};
TORCH_MODULE(Fpn);

// BackboneWithFPN: body (IntermediateLayerGetter over ResNet-50's layer1..4, or over
// MobileNetV3-Large's features with BatchNorm2d's defaults, as torchvision builds it without
// pretrained weights) and fpn.
class FpnBackboneImpl : public nn::Module {
 public:
  explicit FpnBackboneImpl(const std::string& body) {
    body_ = register_module("body", body == "mobilenet_v3_large"
                                        ? makeMobileNetV3FpnBody(BatchNormSpec{1e-5, 0.1})
                                        : makeResNetBody(body));
    fpn_ = register_module("fpn", Fpn(body_->stageChannels(), 256));
  }
  std::vector<Tensor> forward(const Tensor& x) { return fpn_->forward(body_->stages(x)); }

 private:
  std::shared_ptr<ResNetBodyImpl> body_;
  Fpn fpn_{nullptr};
};
TORCH_MODULE(FpnBackbone);

// RPNHead: a 3x3 convolution with ReLU (conv.0.0), then objectness (cls_logits) and box deltas
// (bbox_pred) per anchor; weights N(0, 0.01), biases 0.
class RpnHeadImpl : public nn::Module {
 public:
  RpnHeadImpl(int64_t in, int64_t anchors) {
    Seq block;  // nested: a Sequential with a concrete forward
    block->push_back(nn::Conv2d(nn::Conv2dOptions(in, in, 3).padding(1)));
    block->push_back(nn::ReLU(nn::ReLUOptions(true)));
    conv_->push_back(block);
    register_module("conv", conv_);
    cls_ = register_module("cls_logits", nn::Conv2d(nn::Conv2dOptions(in, anchors, 1)));
    bbox_ = register_module("bbox_pred", nn::Conv2d(nn::Conv2dOptions(in, anchors * 4, 1)));
    for (auto& m : modules(/*include_self=*/false)) {
      if (auto* conv = m->as<nn::Conv2d>()) {
        nn::init::normal_(conv->weight, 0.0, 0.01);
        nn::init::zeros_(conv->bias);
      }
    }
  }
  std::pair<Tensor, Tensor> forward(const Tensor& feature) {
    const auto t = conv_->forward(feature);
    return {cls_->forward(t), bbox_->forward(t)};
  }

 private:
  nn::Sequential conv_;
  nn::Conv2d cls_{nullptr}, bbox_{nullptr};
};
TORCH_MODULE(RpnHead);

class RpnImpl : public nn::Module {
 public:
  RpnImpl(int64_t in, int64_t anchors) { head = register_module("head", RpnHead(in, anchors)); }
  RpnHead head{nullptr};
};
TORCH_MODULE(Rpn);

// TwoMLPHead (box_head.fc6/fc7) and FastRCNNPredictor (box_predictor.cls_score/bbox_pred).
class RoiHeadsImpl : public nn::Module {
 public:
  RoiHeadsImpl(int64_t in_features, int64_t num_classes) {
    box_head_ = register_module("box_head", std::make_shared<nn::Module>());
    fc6 = box_head_->register_module("fc6", nn::Linear(in_features, 1024));
    fc7 = box_head_->register_module("fc7", nn::Linear(1024, 1024));
    predictor_ = register_module("box_predictor", std::make_shared<nn::Module>());
    cls_score = predictor_->register_module("cls_score", nn::Linear(1024, num_classes));
    bbox_pred = predictor_->register_module("bbox_pred", nn::Linear(1024, num_classes * 4));
  }
  nn::Linear fc6{nullptr}, fc7{nullptr}, cls_score{nullptr}, bbox_pred{nullptr};

 private:
  std::shared_ptr<nn::Module> box_head_, predictor_;
};
TORCH_MODULE(RoiHeads);

// The whole network. As a zoo net (ZooModel) it gives its names and layers; its single-tensor
// forward is not how a detector runs (FasterRcnn::forward is).
class FasterRcnnNet : public NetImpl {
 public:
  FasterRcnnNet(const std::string& arch, int num_classes) {
    int64_t channels = 256;
    if (arch == kFpnArch || mobileFpn(arch)) {
      fpn = register_module("backbone",
                            FpnBackbone(arch == kFpnArch ? "resnet50" : "mobilenet_v3_large"));
    } else {
      const auto name = arch.substr(std::string(kPlainPrefix).size());
      if (name.rfind("resnet", 0) == 0) {
        plain = makeResNetSequential(name);
        channels = name == "resnet18" ? 512 : 2048;
      } else {
        // vgg16().features / mobilenet_v2().features, built with the classifier's init.
        const auto net = name == "vgg16" ? makeVgg(name, 1000) : makeMobileNetV2(1000);
        for (const auto& child : net->named_children()) {
          if (child.key() == "features") {
            plain = nn::Sequential(std::dynamic_pointer_cast<nn::SequentialImpl>(child.value()));
          }
        }
        channels = name == "vgg16" ? 512 : 1280;
      }
      register_module("backbone", plain);
    }
    if (mobileFpn(arch)) {  // every size on each of the three levels
      anchors = ops::AnchorGenerator{std::vector<std::vector<double>>(3, {32, 64, 128, 256, 512}),
                                     std::vector<std::vector<double>>(3, {0.5, 1.0, 2.0})};
    } else if (fpn) {
      anchors = ops::AnchorGenerator{{{32}, {64}, {128}, {256}, {512}},
                                     std::vector<std::vector<double>>(5, {0.5, 1.0, 2.0})};
    } else {
      anchors = ops::AnchorGenerator{{{32, 64, 128, 256, 512}}, {{0.5, 1.0, 2.0}}};
    }
    rpn = register_module("rpn", Rpn(channels, anchors.anchorsPerLocation(0)));
    roi_heads = register_module("roi_heads", RoiHeads(channels * 7 * 7, num_classes));
  }

  Tensor forward(Tensor) override {
    throw InputError(
        "a Faster R-CNN runs on images and, while training, their boxes; it returns losses or "
        "detections, not one tensor (run it through its Model)");
  }

  // The feature maps (FPN: "0".."3" and "pool") of the padded batch.
  std::vector<Tensor> features(const Tensor& batch) {
    if (fpn) return fpn->forward(batch);
    return {plain->forward(batch)};
  }
  // The maps RoIAlign pools from (FPN: not "pool").
  std::size_t pooledLevels(std::size_t maps) const { return fpn ? maps - 1 : maps; }

  FpnBackbone fpn{nullptr};
  nn::Sequential plain{nullptr};
  Rpn rpn{nullptr};
  RoiHeads roi_heads{nullptr};
  ops::AnchorGenerator anchors;
};

// torchvision's BalancedPositiveNegativeSampler: per image, a random draw of at most
// batch * fraction positives (label >= 1) and the rest negatives (label 0), with
// torch.randperm on the default generator in torchvision's order. Returns the masks.
std::pair<std::vector<Tensor>, std::vector<Tensor>> sampleBalanced(
    const std::vector<Tensor>& labels, int64_t batch, double fraction) {
  std::vector<Tensor> pos_masks, neg_masks;
  for (const auto& l : labels) {
    const auto positive = torch::nonzero(l >= 1).select(1, 0);
    const auto negative = torch::nonzero(l == 0).select(1, 0);
    const int64_t num_pos =
        std::min<int64_t>(positive.numel(), static_cast<int64_t>(batch * fraction));
    const int64_t num_neg = std::min<int64_t>(negative.numel(), batch - num_pos);
    const auto perm1 =
        torch::randperm(positive.numel(), l.options().dtype(torch::kLong)).narrow(0, 0, num_pos);
    const auto perm2 =
        torch::randperm(negative.numel(), l.options().dtype(torch::kLong)).narrow(0, 0, num_neg);
    auto pos = torch::zeros_like(l, l.options().dtype(torch::kByte));
    auto neg = torch::zeros_like(l, l.options().dtype(torch::kByte));
    pos.index_put_({positive.index_select(0, perm1)}, 1);
    neg.index_put_({negative.index_select(0, perm2)}, 1);
    pos_masks.push_back(pos);
    neg_masks.push_back(neg);
  }
  return {pos_masks, neg_masks};
}

Tensor smoothL1Sum(const Tensor& input, const Tensor& target) {
  return F::smooth_l1_loss(input, target,
                           F::SmoothL1LossFuncOptions().reduction(torch::kSum).beta(1.0 / 9));
}

// resize_boxes: boxes scaled from `from` to `to` (height, width), ratios in float32.

}  // namespace

std::shared_ptr<NetImpl> makeFasterRcnnNet(const std::string& arch, int num_classes) {
  GEMEL_THROW_IF_NOT(isFasterRcnnArch(arch), ConfigError,
                     "arch '{}' is not a Faster R-CNN; use one of: {}", arch, fasterRcnnArchList());
  GEMEL_THROW_IF_NOT(num_classes >= 2, ConfigError,
                     "arch '{}': num_classes is {}; a Faster R-CNN counts the background too, so "
                     "it needs at least 2",
                     arch, num_classes);
  return std::make_shared<FasterRcnnNet>(arch, num_classes);
}

struct FasterRcnn::Impl {
  RcnnSettings s;
  std::shared_ptr<FasterRcnnNet> net;

  // GeneralizedRCNNTransform: the padded batch, each image's resized size, resized targets.
  Tensor transform(const std::vector<Tensor>& images, const std::vector<RcnnTarget>* targets,
                   std::vector<Size2>& original, std::vector<Size2>& sizes,
                   std::vector<RcnnTarget>& resized_targets) {
    std::vector<Tensor> resized;
    const bool training = net->is_training();
    for (std::size_t i = 0; i < images.size(); ++i) {
      const auto& image = images[i];
      GEMEL_THROW_IF_NOT(image.dim() == 3 && image.size(0) == 3 && image.is_floating_point(),
                         InputError,
                         "Faster R-CNN: image {} has shape {} ({}); expected [3, H, W] floats in "
                         "[0, 1]",
                         i, image.sizes(), c10::toString(image.scalar_type()));
      original.push_back({image.size(1), image.size(2)});
      const auto mean = torch::tensor(s.image_mean, torch::kDouble).to(image.options());
      const auto std = torch::tensor(s.image_std, torch::kDouble).to(image.options());
      auto x = (image - mean.view({-1, 1, 1})) / std.view({-1, 1, 1});
      // torchvision draws the training size among min_size's entries (one here) with
      // torch.empty(1).uniform_(): the same draw keeps the default generator in step.
      if (training) torch::empty({1}).uniform_(0.0, 1.0);
      const double h = static_cast<double>(x.size(1)), w = static_cast<double>(x.size(2));
      const double scale = std::min(static_cast<double>(s.min_size) / std::min(h, w),
                                    static_cast<double>(s.max_size) / std::max(h, w));
      x = F::interpolate(x.unsqueeze(0), F::InterpolateFuncOptions()
                                             .scale_factor(std::vector<double>{scale, scale})
                                             .mode(torch::kBilinear)
                                             .align_corners(false)
                                             .recompute_scale_factor(true))[0];
      sizes.push_back({x.size(1), x.size(2)});
      if (targets) {
        const auto& t = (*targets)[i];
        resized_targets.push_back({ops::resizeBoxes(t.boxes, original[i], sizes[i]), t.labels});
      }
      resized.push_back(x);
    }
    int64_t max_h = 0, max_w = 0;
    for (const auto& x : resized)
      max_h = std::max(max_h, x.size(1)), max_w = std::max(max_w, x.size(2));
    const auto up = [](int64_t v) { return static_cast<int64_t>(std::ceil(v / 32.0) * 32); };
    auto batch = torch::zeros({static_cast<int64_t>(resized.size()), 3, up(max_h), up(max_w)},
                              resized[0].options());
    for (std::size_t i = 0; i < resized.size(); ++i) {
      batch[static_cast<int64_t>(i)]
          .narrow(1, 0, resized[i].size(1))
          .narrow(2, 0, resized[i].size(2))
          .copy_(resized[i]);
    }
    return batch;
  }

  // The RPN head over every map, flattened as torchvision's concat_box_prediction_layers
  // flattens it: objectness [N * A_total, 1] and deltas [N * A_total, 4], image-major, then map,
  // location, anchor; the anchors of one image [A_total, 4].
  struct RpnOutputs {
    Tensor objectness, deltas, anchors;
    std::vector<int64_t> per_level;  // anchors per map
  };
  RpnOutputs rpnHeads(const Tensor& batch, const std::vector<Tensor>& maps) {
    const int64_t n = batch.size(0);
    std::vector<Tensor> obj_levels, delta_levels;
    std::vector<Size2> grid;
    RpnOutputs r;
    for (const auto& f : maps) {
      auto [obj, deltas] = net->rpn->head->forward(f);
      const int64_t a = deltas.size(1) / 4, h = obj.size(2), w = obj.size(3);
      const int64_t c = obj.size(1) / a;
      obj_levels.push_back(obj.view({n, a, c, h, w}).permute({0, 3, 4, 1, 2}).reshape({n, -1, c}));
      delta_levels.push_back(
          deltas.view({n, a, 4, h, w}).permute({0, 3, 4, 1, 2}).reshape({n, -1, 4}));
      grid.push_back({h, w});
      r.per_level.push_back(a * h * w);
    }
    r.objectness = torch::cat(obj_levels, 1).flatten(0, -2);
    r.deltas = torch::cat(delta_levels, 1).reshape({-1, 4});
    r.anchors = net->anchors({batch.size(2), batch.size(3)}, grid, maps[0].options());
    return r;
  }

  // filter_proposals: per map the top-n by objectness, then per image clipping, small boxes
  // out, the score threshold, NMS within each map, and the post-NMS top-n.
  std::vector<Tensor> filterProposals(const RpnOutputs& r, int64_t n,
                                      const std::vector<Size2>& sizes) {
    const bool training = net->is_training();
    const auto boxes =
        ops::BoxCoder{}.decode(r.deltas.detach(), r.anchors.repeat({n, 1})).view({n, -1, 4});
    const auto scores = r.objectness.detach().reshape({n, -1});
    std::vector<Tensor> level_ids, top;
    int64_t offset = 0;
    const int64_t pre_nms = training ? s.rpn_pre_nms_top_n_train : s.rpn_pre_nms_top_n_test;
    const int64_t post_nms = training ? s.rpn_post_nms_top_n_train : s.rpn_post_nms_top_n_test;
    for (std::size_t l = 0; l < r.per_level.size(); ++l) {
      level_ids.push_back(torch::full({r.per_level[l]}, static_cast<int64_t>(l),
                                      scores.options().dtype(torch::kLong)));
      const auto ob = scores.narrow(1, offset, r.per_level[l]);
      top.push_back(std::get<1>(ob.topk(std::min(pre_nms, r.per_level[l]), 1)) + offset);
      offset += r.per_level[l];
    }
    const auto top_idx = torch::cat(top, 1);
    const auto levels = torch::cat(level_ids).reshape({1, -1}).expand_as(scores);
    const auto batch_idx = torch::arange(n, top_idx.options()).unsqueeze(1);
    const auto top_scores = torch::sigmoid(scores.index({batch_idx, top_idx}));
    const auto top_levels = levels.index({batch_idx, top_idx});
    const auto top_boxes = boxes.index({batch_idx, top_idx});
    std::vector<Tensor> result;
    for (int64_t i = 0; i < n; ++i) {
      auto b = ops::clipBoxesToImage(top_boxes[i], sizes[i][0], sizes[i][1]);
      auto sc = top_scores[i];
      auto lv = top_levels[i];
      auto keep = ops::removeSmallBoxes(b, 1e-3);
      b = b.index_select(0, keep), sc = sc.index_select(0, keep), lv = lv.index_select(0, keep);
      keep = torch::nonzero(sc >= s.rpn_score_thresh).select(1, 0);
      b = b.index_select(0, keep), sc = sc.index_select(0, keep), lv = lv.index_select(0, keep);
      keep = ops::batchedNms(b, sc, lv, s.rpn_nms_thresh);
      keep = keep.narrow(0, 0, std::min<int64_t>(post_nms, keep.size(0)));
      result.push_back(b.index_select(0, keep));
    }
    return result;
  }

  // assign_targets_to_anchors and compute_loss: loss_objectness and loss_rpn_box_reg.
  void rpnLosses(const RpnOutputs& r, const std::vector<RcnnTarget>& targets, RcnnOutput& out) {
    const ops::Matcher matcher{s.rpn_fg_iou_thresh, s.rpn_bg_iou_thresh, true};
    const ops::BoxCoder coder{};  // weights (1, 1, 1, 1)
    const auto& anchors = r.anchors;
    std::vector<Tensor> labels, regression;
    for (const auto& target : targets) {
      const auto& gt = target.boxes;
      Tensor matched_boxes, image_labels;
      if (gt.numel() == 0) {
        matched_boxes = torch::zeros(anchors.sizes(), anchors.options().dtype(torch::kFloat));
        image_labels = torch::zeros({anchors.size(0)}, anchors.options().dtype(torch::kFloat));
      } else {
        const auto matched = matcher(ops::boxIou(gt, anchors));
        matched_boxes = gt.index_select(0, matched.clamp_min(0));
        image_labels = (matched >= 0).to(torch::kFloat);
        image_labels.masked_fill_(matched == ops::Matcher::kBelowLow, 0.0);
        image_labels.masked_fill_(matched == ops::Matcher::kBetween, -1.0);
      }
      labels.push_back(image_labels);
      regression.push_back(coder.encode(matched_boxes, anchors));
    }
    auto [pos_masks, neg_masks] =
        sampleBalanced(labels, s.rpn_batch_size_per_image, s.rpn_positive_fraction);
    const auto pos = torch::nonzero(torch::cat(pos_masks)).select(1, 0);
    const auto neg = torch::nonzero(torch::cat(neg_masks)).select(1, 0);
    const auto sampled = torch::cat({pos, neg});
    const auto all_labels = torch::cat(labels);
    const auto all_regression = torch::cat(regression);
    const auto box_loss =
        smoothL1Sum(r.deltas.index_select(0, pos), all_regression.index_select(0, pos)) /
        static_cast<double>(sampled.numel());
    const auto obj_loss = F::binary_cross_entropy_with_logits(
        r.objectness.flatten().index_select(0, sampled), all_labels.index_select(0, sampled));
    out.losses.emplace_back("loss_objectness", obj_loss);
    out.losses.emplace_back("loss_rpn_box_reg", box_loss);
  }

  // RegionProposalNetwork: proposals per image, and its two losses when training.
  std::vector<Tensor> proposals(const Tensor& batch, const std::vector<Tensor>& maps,
                                const std::vector<Size2>& sizes,
                                const std::vector<RcnnTarget>* targets, RcnnOutput& out) {
    const auto r = rpnHeads(batch, maps);
    auto result = filterProposals(r, batch.size(0), sizes);
    if (net->is_training()) rpnLosses(r, *targets, out);
    return result;
  }

  // MultiScaleRoIAlign over the pooled maps.
  Tensor roiPool(const std::vector<Tensor>& maps, std::size_t levels,
                 const std::vector<Tensor>& boxes, const std::vector<Size2>& sizes) {
    std::vector<Tensor> with_index;
    for (std::size_t i = 0; i < boxes.size(); ++i) {
      with_index.push_back(torch::cat(
          {torch::full({boxes[i].size(0), 1}, static_cast<double>(i), boxes[i].options()),
           boxes[i]},
          1));
    }
    const auto rois = torch::cat(with_index);
    int64_t max_h = 0;
    for (const auto& sz : sizes) max_h = std::max(max_h, sz[0]);
    // _infer_scale: the power of two nearest each map's height over the largest image height.
    std::vector<double> scales;
    for (std::size_t l = 0; l < levels; ++l) {
      const float approx =
          static_cast<float>(static_cast<double>(maps[l].size(2)) / static_cast<double>(max_h));
      scales.push_back(std::pow(2.0, static_cast<double>(std::nearbyint(std::log2(approx)))));
    }
    if (levels == 1) return ops::roiAlign(maps[0], rois, scales[0], 7, 7, 2, false);
    // LevelMapper (canonical scale 224 at level 4): each roi to the map of its size.
    const auto k_min = static_cast<int64_t>(-std::log2(static_cast<float>(scales.front())));
    const auto k_max = static_cast<int64_t>(-std::log2(static_cast<float>(scales.back())));
    const auto all = torch::cat(boxes);
    const auto area = (all.select(1, 2) - all.select(1, 0)) * (all.select(1, 3) - all.select(1, 1));
    const auto sq = torch::sqrt(area);
    auto target = torch::floor(4 + torch::log2(sq / 224) + torch::tensor(1e-6, sq.options()));
    const auto level =
        target.clamp(static_cast<double>(k_min), static_cast<double>(k_max)).to(torch::kLong) -
        k_min;
    auto result = torch::zeros({rois.size(0), maps[0].size(1), 7, 7}, maps[0].options());
    for (std::size_t l = 0; l < levels; ++l) {
      const auto idx = torch::nonzero(level == static_cast<int64_t>(l)).select(1, 0);
      const auto pooled =
          ops::roiAlign(maps[l], rois.index_select(0, idx), scales[l], 7, 7, 2, false);
      result = result.index_put({idx}, pooled.to(result.scalar_type()));
    }
    return result;
  }

  static constexpr std::array<double, 4> kBoxWeights{10, 10, 5, 5};

  // select_training_samples: the ground truth joins the proposals; each is matched, labelled
  // and sampled; `labels` and `regression` get the sampled ones' class and box targets.
  void sampleProposals(std::vector<Tensor>& proposals, const std::vector<RcnnTarget>& targets,
                       std::vector<Tensor>& labels, std::vector<Tensor>& regression) {
    const ops::Matcher matcher{s.box_fg_iou_thresh, s.box_bg_iou_thresh, false};
    std::vector<Tensor> matched_gt;
    for (std::size_t i = 0; i < proposals.size(); ++i) {
      const auto gt = targets[i].boxes.to(proposals[i].scalar_type());
      proposals[i] = torch::cat({proposals[i], gt});  // add_gt_proposals
      Tensor matched, image_labels;
      if (gt.numel() == 0) {
        matched = torch::zeros({proposals[i].size(0)}, proposals[i].options().dtype(torch::kLong));
        image_labels = torch::zeros_like(matched);
      } else {
        const auto m = matcher(ops::boxIou(gt, proposals[i]));
        matched = m.clamp_min(0);
        image_labels = targets[i].labels.index_select(0, matched).to(torch::kLong);
        image_labels.masked_fill_(m == ops::Matcher::kBelowLow, 0);
        image_labels.masked_fill_(m == ops::Matcher::kBetween, -1);
      }
      labels.push_back(image_labels);
      matched_gt.push_back(matched);
    }
    auto [pos, neg] = sampleBalanced(labels, s.box_batch_size_per_image, s.box_positive_fraction);
    const ops::BoxCoder coder{kBoxWeights};
    for (std::size_t i = 0; i < proposals.size(); ++i) {
      const auto keep = torch::nonzero(pos[i] | neg[i]).select(1, 0);
      proposals[i] = proposals[i].index_select(0, keep);
      labels[i] = labels[i].index_select(0, keep);
      auto gt = targets[i].boxes.to(proposals[i].scalar_type());
      if (gt.numel() == 0) gt = torch::zeros({1, 4}, proposals[i].options());
      regression.push_back(
          coder.encode(gt.index_select(0, matched_gt[i].index_select(0, keep)), proposals[i]));
    }
  }

  // postprocess_detections: per image, per class but the background: clipped boxes above the
  // score threshold, small ones out, NMS per class, the best detections_per_img.
  void postprocess(const Tensor& class_logits, const Tensor& box_regression,
                   const std::vector<Tensor>& proposals, const std::vector<Size2>& sizes,
                   RcnnOutput& out) {
    const int64_t classes = class_logits.size(-1);
    const auto pred_boxes =
        ops::BoxCoder{kBoxWeights}.decode(box_regression, torch::cat(proposals));
    const auto pred_scores = torch::softmax(class_logits, -1);
    int64_t offset = 0;
    for (std::size_t i = 0; i < proposals.size(); ++i) {
      const int64_t k = proposals[i].size(0);
      auto b = ops::clipBoxesToImage(pred_boxes.narrow(0, offset, k), sizes[i][0], sizes[i][1]);
      auto sc = pred_scores.narrow(0, offset, k);
      offset += k;
      auto lb =
          torch::arange(classes, sc.options().dtype(torch::kLong)).view({1, -1}).expand_as(sc);
      b = b.narrow(1, 1, classes - 1).reshape({-1, 4});
      sc = sc.narrow(1, 1, classes - 1).reshape(-1);
      lb = lb.narrow(1, 1, classes - 1).reshape(-1);
      auto keep = torch::nonzero(sc > s.box_score_thresh).select(1, 0);
      b = b.index_select(0, keep), sc = sc.index_select(0, keep), lb = lb.index_select(0, keep);
      keep = ops::removeSmallBoxes(b, 1e-2);
      b = b.index_select(0, keep), sc = sc.index_select(0, keep), lb = lb.index_select(0, keep);
      keep = ops::batchedNms(b, sc, lb, s.box_nms_thresh);
      keep = keep.narrow(0, 0, std::min<int64_t>(s.box_detections_per_img, keep.size(0)));
      out.detections.push_back(
          {b.index_select(0, keep), sc.index_select(0, keep), lb.index_select(0, keep)});
    }
  }

  // RoIHeads: the box losses when training, else the detections (in the resized images).
  void boxes(const std::vector<Tensor>& maps, std::vector<Tensor> proposals,
             const std::vector<Size2>& sizes, const std::vector<RcnnTarget>* targets,
             RcnnOutput& out) {
    const bool training = net->is_training();
    std::vector<Tensor> labels, regression;
    if (training) sampleProposals(proposals, *targets, labels, regression);
    auto x = roiPool(maps, net->pooledLevels(maps.size()), proposals, sizes).flatten(1);
    x = torch::relu(net->roi_heads->fc6->forward(x));
    x = torch::relu(net->roi_heads->fc7->forward(x));
    const auto class_logits = net->roi_heads->cls_score->forward(x);
    const auto box_regression = net->roi_heads->bbox_pred->forward(x);
    if (!training) return postprocess(class_logits, box_regression, proposals, sizes, out);
    // fastrcnn_loss
    const auto all_labels = torch::cat(labels);
    const auto all_regression = torch::cat(regression);
    const auto cls_loss = F::cross_entropy(class_logits, all_labels);
    const auto pos = torch::nonzero(all_labels > 0).select(1, 0);
    const int64_t rows = class_logits.size(0);
    const auto per_class = box_regression.reshape({rows, box_regression.size(-1) / 4, 4});
    const auto box_loss = smoothL1Sum(per_class.index({pos, all_labels.index_select(0, pos)}),
                                      all_regression.index_select(0, pos)) /
                          static_cast<double>(all_labels.numel());
    out.losses.insert(out.losses.begin(),
                      {{"loss_classifier", cls_loss}, {"loss_box_reg", box_loss}});
  }
};

FasterRcnn::FasterRcnn(const std::string& arch, int num_classes, RcnnSettings settings)
    : impl_(std::make_unique<Impl>()) {
  impl_->net = std::static_pointer_cast<FasterRcnnNet>(makeFasterRcnnNet(arch, num_classes));
  impl_->s = std::move(settings);
}

FasterRcnn::~FasterRcnn() = default;

torch::nn::Module& FasterRcnn::module() { return *impl_->net; }
std::shared_ptr<torch::nn::Module> FasterRcnn::sharedModule() { return impl_->net; }
const RcnnSettings& FasterRcnn::settings() const { return impl_->s; }

RcnnOutput FasterRcnn::forward(const std::vector<Tensor>& images,
                               const std::vector<RcnnTarget>* targets) {
  auto& m = *impl_;
  const bool training = m.net->is_training();
  GEMEL_THROW_IF_NOT(!images.empty(), InputError, "Faster R-CNN: no images");
  GEMEL_THROW_IF_NOT(!training || targets, InputError,
                     "Faster R-CNN: training needs each image's boxes and labels");
  if (targets) {
    GEMEL_THROW_IF_NOT(targets->size() == images.size(), InputError,
                       "Faster R-CNN: {} images and {} targets", images.size(), targets->size());
    for (std::size_t i = 0; i < targets->size(); ++i) {
      const auto& b = (*targets)[i].boxes;
      GEMEL_THROW_IF_NOT(
          b.dim() == 2 && b.size(1) == 4 && (*targets)[i].labels.dim() == 1 &&
              (*targets)[i].labels.size(0) == b.size(0),
          InputError, "Faster R-CNN: target {} has boxes {} and labels {}; expected [K, 4] and [K]",
          i, b.sizes(), (*targets)[i].labels.sizes());
      if (b.size(0) == 0) continue;
      const auto bad = (b.select(1, 2) <= b.select(1, 0)) | (b.select(1, 3) <= b.select(1, 1));
      GEMEL_THROW_IF_NOT(!bad.any().item<bool>(), InputError,
                         "Faster R-CNN: target {} has a box without positive height and width; "
                         "every box needs x2 > x1 and y2 > y1",
                         i);
    }
  }
  std::vector<Size2> original, sizes;
  std::vector<RcnnTarget> resized_targets;
  const auto batch = m.transform(images, targets, original, sizes, resized_targets);
  const auto* t = targets ? &resized_targets : nullptr;
  const auto maps = m.net->features(batch);
  RcnnOutput out;
  auto proposals = m.proposals(batch, maps, sizes, t, out);
  m.boxes(maps, std::move(proposals), sizes, t, out);
  if (!training) {
    for (std::size_t i = 0; i < out.detections.size(); ++i)
      out.detections[i].boxes = ops::resizeBoxes(out.detections[i].boxes, sizes[i], original[i]);
  }
  return out;
}

RcnnSettings rcnnSettingsFor(int image_size, const std::vector<double>& mean,
                             const std::vector<double>& std, const std::string& arch) {
  RcnnSettings s;
  s.min_size = image_size;
  s.max_size = (static_cast<int64_t>(image_size) * 1333 + 400) / 800;
  s.image_mean = mean;
  s.image_std = std;
  if (mobileFpn(arch)) s.rpn_score_thresh = 0.05;  // torchvision's builders' defaults
  if (arch == "fasterrcnn_mobilenet_v3_large_320_fpn") {
    s.max_size = 2 * static_cast<int64_t>(image_size);  // 320 and 640
    s.rpn_pre_nms_top_n_test = s.rpn_post_nms_top_n_test = 150;
  }
  return s;
}

RcnnSettings rcnnSettingsFor(const config::TaskConfig& task) {
  auto s = rcnnSettingsFor(task.image_size, task.transforms.mean, task.transforms.std, task.arch);
  for (const auto& [key, value] : task.sampling) {
    const auto count = static_cast<int64_t>(value);
    if (key == "rpn_batch_size_per_image")
      s.rpn_batch_size_per_image = count;
    else if (key == "rpn_positive_fraction")
      s.rpn_positive_fraction = value;
    else if (key == "rpn_pre_nms_top_n_train")
      s.rpn_pre_nms_top_n_train = count;
    else if (key == "rpn_post_nms_top_n_train")
      s.rpn_post_nms_top_n_train = count;
    else if (key == "box_batch_size_per_image")
      s.box_batch_size_per_image = count;
    else if (key == "box_positive_fraction")
      s.box_positive_fraction = value;
    else
      GEMEL_ASSERT(false, "task {}: sampling key {} is not one of config::samplingKeys()",
                   task.name, key);
  }
  return s;
}

namespace {

// The zoo model of a Faster R-CNN's module tree (names, layers, sharing), whose forward runs
// the detector.
class RcnnModel final : public ZooModel {
 public:
  RcnnModel(const std::string& arch, std::unique_ptr<FasterRcnn> rcnn)
      : ZooModel(arch, std::dynamic_pointer_cast<NetImpl>(rcnn->sharedModule())),
        rcnn_(std::move(rcnn)) {}

  ModelOutput forward(const Tensor& images, const std::vector<BoxTargets>* targets) override {
    GEMEL_THROW_IF_NOT(images.dim() == 4, InputError,
                       "Faster R-CNN: images {}; expected [N, 3, H, W] floats in [0, 1]",
                       images.sizes());
    const auto list = images.unbind(0);
    return rcnn_->forward({list.begin(), list.end()}, net_->is_training() ? targets : nullptr);
  }
  bool takesTargets() const override { return true; }

 private:
  std::unique_ptr<FasterRcnn> rcnn_;
};

}  // namespace

std::unique_ptr<Model> makeFasterRcnnModel(const std::string& arch, int num_classes,
                                           RcnnSettings settings) {
  return std::make_unique<RcnnModel>(
      arch, std::make_unique<FasterRcnn>(arch, num_classes, std::move(settings)));
}

}  // namespace gemel::models
