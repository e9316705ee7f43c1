#pragma once
// The two detection ops Faster R-CNN needs, as torchvision.ops computes them, on the CPU and
// (when LibTorch has CUDA) on CUDA devices, with gemel's own kernels:
//   roiAlign   torchvision.ops.roi_align: average of bilinear samples over each output bin,
//              differentiable in `input` (rois are not differentiated, as in torchvision);
//   nms        torchvision.ops.nms: greedy suppression by IoU, highest score first;
//   batchedNms torchvision.ops.batched_nms: nms within each category (idxs).
// float and double everywhere; half and bfloat16 on CUDA (computed in float).
#include <cstdint>

#include <torch/types.h>

namespace gemel::ops {

// input [N, C, H, W]; rois [K, 5] (batch index, x1, y1, x2, y2 in input pixels), the same
// dtype and device as input -> [K, C, pooled_h, pooled_w]. spatial_scale maps roi coordinates
// onto the map; sampling_ratio <= 0: ceil(roi size / pooled size) samples per bin side;
// aligned: pixel centres at +0.5 (torchvision's aligned=True).
torch::Tensor roiAlign(const torch::Tensor& input, const torch::Tensor& rois, double spatial_scale,
                       int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned);

// boxes [K, 4] (x1, y1, x2, y2), scores [K] -> int64 indices of the kept boxes, highest score
// first. A box is suppressed by a kept box of higher score whose IoU with it exceeds
// iou_threshold. Boxes of equal score are taken in the order torchvision takes them (its
// torch.sort: not stable on the CPU, stable on CUDA).
torch::Tensor nms(const torch::Tensor& boxes, const torch::Tensor& scores, double iou_threshold);

// As nms, but boxes of different idxs [K] (int64) never suppress each other.
torch::Tensor batchedNms(const torch::Tensor& boxes, const torch::Tensor& scores,
                         const torch::Tensor& idxs, double iou_threshold);

// Whether the CUDA kernels were compiled into this build.
bool haveCudaKernels();

}  // namespace gemel::ops
