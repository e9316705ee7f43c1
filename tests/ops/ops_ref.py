"""Reference side of the ops parity tests (tests/ops/roi_ops_test.cpp), run with the pinned
torch and torchvision wheels (CMake's GEMEL_PYTHON).

  make DIR   random inputs and torchvision.ops' answers -> DIR/ref.pt, one flat dict of tensors:
             roi_align cases  ra<k>.{input, rois, params, grad_out, output, grad_input}
                              params = (spatial_scale, pooled_h, pooled_w, sampling_ratio,
                              aligned); grad_input is d(sum(output * grad_out))/d(input)
             nms cases        nms<k>.{boxes, scores, iou, keep}
             batched_nms      bn<k>.{boxes, scores, idxs, iou, keep}
             box arithmetic   box.{a, b, iou, clipped, small, codes, decoded, quality,
                              matches0, matches1, anchors_fpn, anchors_plain}: box_iou(a, b),
                              clip_boxes_to_image(a, (40, 50)), remove_small_boxes(a, 4),
                              BoxCoder((10, 10, 5, 5)).encode_single(b[:n], a[:n]) and
                              .decode_single(codes, a[:n]), Matcher(0.7, 0.3, True) and
                              Matcher(0.5, 0.5, False) on quality, AnchorGenerator for
                              fasterrcnn_resnet50_fpn on a 128 x 160 batch and for the plain
                              backbones on a 96 x 128 batch (maps as in ANCHOR_MAPS)

The inputs include what detection produces at its edges: rois and boxes that are empty
(x1 == x2), inverted (x2 < x1), outside the map or partly so, no rois at all, no boxes at all,
and boxes that are identical.
"""
import sys

import torch
import torchvision


def random_rois(g, k, batch, height, width, scale, dtype):
    """k rois on an input of (height, width) / scale pixels, a quarter of them degenerate."""
    h, w = height / scale, width / scale
    x1 = torch.rand(k, generator=g, dtype=torch.float64) * w * 1.2 - 0.1 * w
    y1 = torch.rand(k, generator=g, dtype=torch.float64) * h * 1.2 - 0.1 * h
    x2 = x1 + torch.rand(k, generator=g, dtype=torch.float64) * w * 0.6
    y2 = y1 + torch.rand(k, generator=g, dtype=torch.float64) * h * 0.6
    q = k // 4
    x2[:q // 2] = x1[:q // 2]                       # empty
    y2[q // 2:q] = y1[q // 2:q] - 3.0               # inverted
    x1[q:q + 2] = -5 * w                            # wholly outside
    x2[q:q + 2] = -4 * w
    idx = torch.randint(0, batch, (k,), generator=g).to(torch.float64)
    return torch.stack([idx, x1, y1, x2, y2], 1).to(dtype)


def random_boxes(g, k, size, dtype):
    xy = torch.rand(k, 2, generator=g, dtype=torch.float64) * size
    wh = torch.rand(k, 2, generator=g, dtype=torch.float64) * size * 0.5
    boxes = torch.cat([xy, xy + wh], 1)
    q = k // 10
    if k == 0:
        return boxes.to(dtype)
    boxes[:q, 2] = boxes[:q, 0]                     # empty
    boxes[q:2 * q, 3] = boxes[q:2 * q, 1] - 1.0     # inverted
    boxes[2 * q:2 * q + 3] = boxes[2 * q + 3]       # identical, different scores
    return boxes.to(dtype)


def make(out_dir):
    g = torch.Generator().manual_seed(0)
    ref = {}
    # (dtype, N, C, H, W, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned)
    cases = [
        (torch.float32, 2, 3, 10, 12, 24, 0.5, 3, 4, 2, False),
        (torch.float32, 1, 4, 16, 16, 32, 0.25, 7, 7, -1, True),
        (torch.float64, 2, 2, 9, 7, 20, 1.0, 2, 2, 0, False),
        (torch.float64, 3, 2, 8, 8, 16, 0.125, 5, 3, 3, True),
        (torch.float32, 2, 3, 6, 6, 0, 0.5, 2, 2, 2, False),  # no rois
    ]
    for k, (dtype, n, c, h, w, nr, scale, ph, pw, sr, aligned) in enumerate(cases):
        x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
        rois = random_rois(g, nr, n, h, w, scale, dtype)
        out = torchvision.ops.roi_align(x, rois, (ph, pw), scale, sr, aligned)
        grad_out = torch.randn(out.shape, generator=g, dtype=torch.float64).to(dtype)
        (out * grad_out).sum().backward()
        ref[f"ra{k}.input"] = x.detach()
        ref[f"ra{k}.rois"] = rois
        ref[f"ra{k}.params"] = torch.tensor([scale, ph, pw, sr, float(aligned)], dtype=torch.float64)
        ref[f"ra{k}.grad_out"] = grad_out
        ref[f"ra{k}.output"] = out.detach()
        ref[f"ra{k}.grad_input"] = x.grad
    # (dtype, boxes, iou)
    for k, (dtype, nb, iou) in enumerate([(torch.float32, 300, 0.5), (torch.float64, 200, 0.3),
                                          (torch.float32, 150, 0.7), (torch.float32, 0, 0.5)]):
        boxes = random_boxes(g, nb, 100.0, dtype)
        scores = torch.rand(nb, generator=g, dtype=torch.float64).to(dtype)
        ref[f"nms{k}.boxes"] = boxes
        ref[f"nms{k}.scores"] = scores
        ref[f"nms{k}.iou"] = torch.tensor(iou, dtype=torch.float64)
        ref[f"nms{k}.keep"] = torchvision.ops.nms(boxes, scores, iou)
    # Both of torchvision's strategies: one nms over offset boxes (few), per category (many).
    for k, (nb, categories, iou) in enumerate([(200, 4, 0.5), (1500, 5, 0.4), (0, 3, 0.5)]):
        boxes = random_boxes(g, nb, 60.0, torch.float32)
        scores = torch.rand(nb, generator=g)
        idxs = torch.randint(0, categories, (nb,), generator=g)
        ref[f"bn{k}.boxes"] = boxes
        ref[f"bn{k}.scores"] = scores
        ref[f"bn{k}.idxs"] = idxs
        ref[f"bn{k}.iou"] = torch.tensor(iou, dtype=torch.float64)
        ref[f"bn{k}.keep"] = torchvision.ops.batched_nms(boxes, scores, idxs, iou)
    box_arithmetic(g, ref)
    torch.save(ref, f"{out_dir}/ref.pt")


# Feature map sizes for the anchor cases (the C++ side uses the same).
ANCHOR_MAPS_FPN = [(32, 40), (16, 20), (8, 10), (4, 5), (2, 3)]
ANCHOR_MAPS_PLAIN = [(6, 8)]


def box_arithmetic(g, ref):
    from torchvision.models.detection import _utils as det_utils
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList

    a = random_boxes(g, 60, 50.0, torch.float32)
    b = random_boxes(g, 40, 50.0, torch.float32)
    ref["box.a"], ref["box.b"] = a, b
    ref["box.iou"] = torchvision.ops.box_iou(a, b)
    ref["box.clipped"] = torchvision.ops.clip_boxes_to_image(a * 1.2 - 5, (40, 50))
    ref["box.small"] = torchvision.ops.remove_small_boxes(a, 4.0)
    n = 40
    # Positive-size boxes only: regression targets of empty boxes are infinite.
    pa = torch.cat([a[:, :2], a[:, :2] + 1 + torch.rand(60, 2, generator=g) * 9], 1)[:n]
    pb = torch.cat([b[:, :2], b[:, :2] + 1 + torch.rand(40, 2, generator=g) * 9], 1)[:n]
    ref["box.pa"], ref["box.pb"] = pa, pb
    coder = det_utils.BoxCoder((10.0, 10.0, 5.0, 5.0))
    ref["box.codes"] = coder.encode_single(pb, pa)
    codes = torch.randn(n, 8, generator=g) * 2
    codes[0, 2] = 50.0  # clamped before exp
    ref["box.rel"] = codes
    ref["box.decoded"] = coder.decode_single(codes, pa)
    quality = torch.rand(5, 70, generator=g)
    quality[:, :10] = (quality[:, :10] * 10).round() / 10  # ties, and values at the thresholds
    ref["box.quality"] = quality
    ref["box.matches0"] = det_utils.Matcher(0.7, 0.3, allow_low_quality_matches=True)(quality)
    ref["box.matches1"] = det_utils.Matcher(0.5, 0.5, allow_low_quality_matches=False)(quality)
    fpn = AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
    maps = [torch.zeros(1, 1, h, w) for h, w in ANCHOR_MAPS_FPN]
    ref["box.anchors_fpn"] = fpn(ImageList(torch.zeros(1, 3, 128, 160), [(120, 150)]), maps)[0]
    plain = AnchorGenerator(((32, 64, 128, 256, 512),), ((0.5, 1.0, 2.0),))
    maps = [torch.zeros(1, 1, h, w) for h, w in ANCHOR_MAPS_PLAIN]
    ref["box.anchors_plain"] = plain(ImageList(torch.zeros(1, 3, 96, 128), [(96, 120)]), maps)[0]


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "make":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    make(sys.argv[2])
