#pragma once
// Object detection with the YOLOv3 family, as PyTorch-YOLOv3 (`pytorchyolo`) does it:
//   - the yolo heads' geometry (anchors, strides) from the Darknet cfg;
//   - the training loss (anchor assignment, CIoU box term, objectness and class BCE);
//   - decoding of the raw heads, a confidence threshold and class-aware batched NMS;
//   - COCO-style evaluation (pycocotools' matching and 101-point AP), split into per-image
//     records that ranks concatenate and a score computed once from all of them.
#include <array>
#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "gemel/data/dataset.h"
#include "gemel/models/darknet_cfg.h"

namespace gemel::train {

struct YoloHead {
  std::vector<std::array<float, 2>> anchors;  // (w, h) in input pixels, this head's mask
  int64_t stride = 32;                        // input pixels per grid cell
};
std::vector<YoloHead> yoloHeads(const models::DarknetNet& net);

// The model's raw output [N, sum(na * ny * nx), 5 + C] (heads concatenated, each anchor-major,
// then rows, then columns) as one view [N, na, ny, nx, 5 + C] per head.
std::vector<torch::Tensor> splitHeads(const torch::Tensor& raw, const std::vector<YoloHead>& heads,
                                      int64_t image_size);

// targets: float [M, 6] rows (image in batch, class, cx, cy, w, h), coordinates relative to the
// square input (0..1). Returns {total, box, obj, cls}; total is what training minimises.
struct YoloLoss {
  torch::Tensor total, box, obj, cls;
};
YoloLoss yoloLoss(const torch::Tensor& raw, const std::vector<YoloHead>& heads, int64_t image_size,
                  const torch::Tensor& targets);

// Raw heads -> [N, P, 5 + C]: box centre and size in input pixels, sigmoid objectness and
// class probabilities (what pytorchyolo's model returns in eval mode).
torch::Tensor decodeYolo(const torch::Tensor& raw, const std::vector<YoloHead>& heads,
                         int64_t image_size);

struct NmsOptions {
  double conf = 0.01;         // objectness, and objectness x class probability, above this
  double iou = 0.4;           // boxes of one class overlapping more than this are suppressed
  int64_t max_det = 300;      // per image
  int64_t max_boxes = 30000;  // candidates per image into the suppression
};
// Per image: [K, 6] rows (x1, y1, x2, y2, score, class), best score first. Every (box, class)
// pair above the threshold is a candidate (multi-label when there are several classes).
std::vector<torch::Tensor> nonMaxSuppression(const torch::Tensor& decoded,
                                             const NmsOptions& options);

// COCO evaluation (bbox, area "all", 100 detections per image and class, IoU 0.50:0.05:0.95,
// 101 recall points), in two parts so that ranks can each evaluate their images:
//   cocoRecords: one image's detections against its ground truth, matched as pycocotools
//     matches them, appended to `records` (kCocoRecordSize int64 per detection);
//     `gt_counts[c]` gains the image's ground-truth boxes of class c;
//   cocoScore: AP from the records of every image (in any order) and the summed counts.
// class, image, rank in image, score bits, matches, then the box x, y, w, h (double bits)
inline constexpr int kCocoRecordSize = 9;
inline constexpr int kCocoThresholds = 10;
void cocoRecords(const torch::Tensor& detections, const std::vector<data::Box>& truth,
                 int64_t image, int64_t num_classes, std::vector<int64_t>& records,
                 int64_t* gt_counts);
struct CocoAp {
  double map = 0;    // mAP@[.5:.95]
  double map50 = 0;  // mAP@0.5
  int classes = 0;   // with ground truth (the ones averaged)
};
// One detection as pycocotools' loadRes takes it: dataset index as image_id, the class (from
// 0) as category_id, bbox as (x, y, w, h) in source pixels.
struct CocoDetection {
  int64_t image = 0, category = 0;
  double score = 0;
  double bbox[4] = {0, 0, 0, 0};
};
// The detections in `records`, ordered by image, then class, then score (best first).
std::vector<CocoDetection> cocoDetections(const std::vector<int64_t>& records);
// `detections` as a COCO results file (a JSON list) at `path`, written whole or not at all.
void writeCocoResults(const std::string& path, const std::vector<CocoDetection>& detections);
CocoAp cocoScore(const std::vector<int64_t>& records, const int64_t* gt_counts,
                 int64_t num_classes);

}  // namespace gemel::train
