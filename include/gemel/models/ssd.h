#pragma once
// SSD as torchvision builds and trains it (torchvision.models.detection.ssd / ssdlite), with its
// module and parameter names, so that torchvision state_dicts load both ways:
//   ssd300_vgg16                   VGG-16's features up to conv4_3, its L2 norm scale
//                                  (backbone.scale_weight), conv5 + the atrous fc6/fc7 and four
//                                  extra blocks (backbone.extra.*), 3x3 conv heads (head.*);
//   ssdlite320_mobilenet_v3_large  MobileNetV3-Large with the reduced tail (as torchvision builds
//                                  it without a pretrained backbone), split at the C4 block's
//                                  expansion (backbone.features.0/1), four depthwise-separable
//                                  extra blocks (backbone.extra.*) and depthwise-separable heads;
//                                  BatchNorm eps 0.001, momentum 0.03.
// Both: GeneralizedRCNNTransform with a fixed square size (normalise, resize), the default-box
// generator, SSDMatcher, the (10, 10, 5, 5) box coder, hard negative mining at 3:1, the smooth-L1
// and cross-entropy losses, and postprocessing (score threshold, top-k per class, class-wise
// NMS, detections per image) with torchvision's defaults for each model. The backbones train
// whole (torchvision's trainable_backbone_layers when no pretrained backbone is given).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gemel/models/archs.h"  // isSsdArch, ssdDefaultSize
#include "gemel/models/model.h"

namespace gemel::models {

struct SsdSettings {
  int64_t size = 300;  // the fixed square input side
  std::vector<double> image_mean{0.48235, 0.45882, 0.40784};
  std::vector<double> image_std{1.0 / 255, 1.0 / 255, 1.0 / 255};
  double score_thresh = 0.01, nms_thresh = 0.45;
  int64_t detections_per_img = 200, topk_candidates = 400;
  double iou_thresh = 0.5, positive_fraction = 0.25;
};

// torchvision's settings for the arch, with the task's input side and normalisation.
SsdSettings ssdSettingsFor(const std::string& arch, int image_size, const std::vector<double>& mean,
                           const std::vector<double>& std);

// An SSD as a Model: forward takes images [N, 3, H, W] in [0, 1] and, in training mode, each
// image's BoxTargets; it returns the two losses (bbox_regression, classification) in training
// mode, the detections (in each image's pixels) in eval mode. `num_classes` counts the
// background, as torchvision's does. ConfigError for an unknown arch or fewer than 2 classes.
std::unique_ptr<Model> makeSsdModel(const std::string& arch, int num_classes,
                                    const SsdSettings& settings);

}  // namespace gemel::models
