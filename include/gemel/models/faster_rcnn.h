#pragma once
// Faster R-CNN as torchvision builds and runs it (torchvision.models.detection), with its module
// and parameter names, so that torchvision state_dicts load both ways:
//   fasterrcnn_resnet50_fpn   a ResNet-50 body (backbone.body.*), an FPN over layer1..4 plus a
//                             max-pooled level (backbone.fpn.*), anchors 32..512 one size per
//                             level, MultiScaleRoIAlign over levels "0".."3";
//   fasterrcnn:<backbone>     the original Gemel's build over a plain backbone (resnet18,
//                             resnet50, resnet101: nn.Sequential(*children()[:-2]); vgg16,
//                             mobilenet_v2: .features) as backbone.<i>.*, one feature map,
//                             anchors ((32, 64, 128, 256, 512),) x ratios (0.5, 1, 2), RoIAlign
//                             7x7 with sampling ratio 2;
//   fasterrcnn_mobilenet_v3_large_fpn (and _320_fpn)  MobileNetV3-Large's features
//                             (backbone.body.0..16) with an FPN over the C4 block and the last
//                             conv plus a max-pooled level, anchors 32..512 on every level.
// Both: GeneralizedRCNNTransform (normalise, resize so the short side is min_size and the long
// side at most max_size, pad the batch to a multiple of 32), the RPN (rpn.head.*), the two-MLP
// box head (roi_heads.box_head.fc6/fc7) and predictor (roi_heads.box_predictor.*), with
// torchvision's defaults for every threshold and count. BatchNorm is nn.BatchNorm2d, as
// torchvision builds these models without pretrained weights.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "gemel/config/workload.h"
#include "gemel/models/archs.h"  // isFasterRcnnArch
#include "gemel/models/model.h"

namespace torch::nn {
class Module;
}

namespace gemel::models {

struct RcnnSettings {
  // GeneralizedRCNNTransform
  int64_t min_size = 800, max_size = 1333;
  std::vector<double> image_mean{0.485, 0.456, 0.406}, image_std{0.229, 0.224, 0.225};
  // RPN
  int64_t rpn_pre_nms_top_n_train = 2000, rpn_pre_nms_top_n_test = 1000;
  int64_t rpn_post_nms_top_n_train = 2000, rpn_post_nms_top_n_test = 1000;
  double rpn_nms_thresh = 0.7, rpn_fg_iou_thresh = 0.7, rpn_bg_iou_thresh = 0.3;
  int64_t rpn_batch_size_per_image = 256;
  double rpn_positive_fraction = 0.5, rpn_score_thresh = 0.0;
  // box heads
  double box_score_thresh = 0.05, box_nms_thresh = 0.5;
  int64_t box_detections_per_img = 100;
  double box_fg_iou_thresh = 0.5, box_bg_iou_thresh = 0.5;
  int64_t box_batch_size_per_image = 512;
  double box_positive_fraction = 0.25;
};

// One image's ground truth (BoxTargets: boxes in the image's pixels, labels in
// 1..num_classes-1, 0 being the background) and its detections.
using RcnnTarget = BoxTargets;
using RcnnDetections = Detections;
// Training: the four losses (loss_classifier, loss_box_reg, loss_objectness,
// loss_rpn_box_reg, in that order); evaluation: the detections per image.
using RcnnOutput = ModelOutput;

// The settings of a Faster R-CNN task: the transform's min_size is the task's image_size and
// its max_size image_size * 1333 / 800 rounded (torchvision's 800 and 1333 at image_size 800);
// image_mean and image_std are the task's transforms' mean and std.
// The arch's own defaults too: fasterrcnn_mobilenet_v3_large_fpn's RPN score threshold 0.05;
// its _320_ variant's max_size of twice min_size and 150 RPN proposals in eval.
RcnnSettings rcnnSettingsFor(int image_size, const std::vector<double>& mean,
                             const std::vector<double>& std, const std::string& arch = "");
// A task's: the above, with its `sampling` keys (torchvision's training-time sampling).
RcnnSettings rcnnSettingsFor(const config::TaskConfig& task);

// A Faster R-CNN as a Model: forward takes images [N, 3, H, W] in [0, 1] and, in training mode,
// each image's BoxTargets; it returns the four losses (training) or the detections (eval).
// `num_classes` counts the background, as torchvision's does.
std::unique_ptr<Model> makeFasterRcnnModel(const std::string& arch, int num_classes,
                                           RcnnSettings settings = {});

class FasterRcnn {
 public:
  // Throws ConfigError for an unknown arch or num_classes < 2.
  FasterRcnn(const std::string& arch, int num_classes, RcnnSettings settings = {});
  ~FasterRcnn();
  FasterRcnn(const FasterRcnn&) = delete;
  FasterRcnn& operator=(const FasterRcnn&) = delete;

  // images: each [3, H, W], float, in [0, 1]. In training mode `targets` (one per image) are
  // required and the losses come back; in eval mode the detections.
  RcnnOutput forward(const std::vector<torch::Tensor>& images,
                     const std::vector<RcnnTarget>* targets = nullptr);

  // The module tree (named_parameters / named_buffers give torchvision's state_dict keys).
  torch::nn::Module& module();
  std::shared_ptr<torch::nn::Module> sharedModule();
  const RcnnSettings& settings() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gemel::models
