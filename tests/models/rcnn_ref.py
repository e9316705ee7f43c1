"""Reference side of the Faster R-CNN parity tests (tests/models/rcnn_parity_test.cpp), run
with the pinned torch and torchvision wheels (CMake's GEMEL_PYTHON).

  make ARCH NUM_CLASSES DIR   the torchvision model -> DIR/py_weights.pt (its state_dict),
                              DIR/py_io.pt: two images of different sizes (image0, image1),
                              their ground truth (boxes0, labels0, boxes1, labels1), the
                              eval-mode detections (det_boxes<i>, det_scores<i>, det_labels<i>),
                              and the four train-mode losses (loss_classifier, loss_box_reg,
                              loss_objectness, loss_rpn_box_reg) after torch.manual_seed(SEED),
                              every parameter's gradient of their sum (grad.<name>), and how
                              far each loss and gradient moves when the images move by 1e-6
                              (spread.<loss>, spread.grad.<name>: torchvision's own rounding);
                              and torchvision's own fp32 error against the same model in fp64
                              (fperr.scores<i>, fperr.boxes<i>, fperr.<loss>), which scales the
                              test's tolerances to this machine's float arithmetic

  check ARCH NUM_CLASSES DIR  DIR/cpp_weights.pt (written by gemel) loads into the torchvision
                              model with strict load_state_dict, and equals DIR/py_weights.pt
                              tensor for tensor

  frozen NUM_CLASSES DIR       fasterrcnn_resnet50_fpn in the layout of torchvision's
                              COCO-pretrained weights (FrozenBatchNorm2d in the body, so no
                              num_batches_tracked), built without downloading them ->
                              DIR/py_weights.pt

  frozen_step NUM_CLASSES DIR  that layout fine-tuned as torchvision does (conv1 and layer1
                              frozen too): DIR/py_weights.pt, and DIR/py_io.pt with two images,
                              their targets, the four train-mode losses and the gradient of
                              every parameter that takes one ("grad." + name)

  frozen_check NUM_CLASSES DIR DIR/cpp_weights.pt loads strictly into that layout and into
                              fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)

  score ARCH NUM_CLASSES MIN_SIZE MAX_SIZE MODEL DATA [GEMEL_DETECTIONS]
                              a detector exported by gemel (MODEL, a state_dict for
                              NUM_CLASSES with the background) in torchvision's model with that
                              transform (an SSD arch: torchvision's SSD at the fixed size
                              MIN_SIZE, tests/models/ssd_ref.py), on DATA (a .pt: val images in [0, 1], their dataset
                              indices and boxes): torchvision's detections, pycocotools' mAP@0.5
                              and mAP@[.5:.95], printed as JSON; with GEMEL_DETECTIONS (what
                              `gemel eval --detections` wrote for this model), also how many
                              images have a different number of detections there

  classifier NAME DIR          torchvision's NAME classifier (resnet50, resnet18, vgg16,
                              mobilenet_v2), its BatchNorm statistics redrawn -> DIR/NAME.pt
                              (what weights_backbone takes)

ARCH is fasterrcnn_resnet50_fpn, fasterrcnn_mobilenet_v3_large_fpn or
fasterrcnn_mobilenet_v3_large_320_fpn (torchvision's builders, no pretrained weights) or
fasterrcnn:<backbone> (the original Gemel's build over a plain backbone: resnet18, resnet50,
resnet101, vgg16, mobilenet_v2). Images are small (MIN_SIZE, MAX_SIZE) to keep the CPU time
short. The two score layers are redrawn (spread_scores) so that the untrained model's scores
are spread out, not near-ties whose order is rounding.
"""
import copy
import json
import sys

import torch
import torchvision
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

MIN_SIZE, MAX_SIZE = 128, 160


def sizes(arch):
    """The transform's sizes for `make`: MobileNetV3's FPN reads maps of stride 16 and 32,
    which at 128 px are so small that most proposals pool the same features and tie."""
    return (320, 400) if "mobilenet_v3" in arch else (MIN_SIZE, MAX_SIZE)
SEED = 7


def plain_backbone(name):
    if name.startswith("resnet"):
        net = torchvision.models.__dict__[name]()
        backbone = torch.nn.Sequential(*list(net.children())[:-2])
        backbone.out_channels = 512 if name == "resnet18" else 2048
    else:
        backbone = torchvision.models.__dict__[name]().features
        backbone.out_channels = 512 if name == "vgg16" else 1280
    return backbone


def build(arch, num_classes, min_size=MIN_SIZE, max_size=MAX_SIZE, **transform):
    torch.manual_seed(0)
    if arch in ("fasterrcnn_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn",
                "fasterrcnn_mobilenet_v3_large_320_fpn"):
        model = torchvision.models.detection.__dict__[arch](
            weights=None, weights_backbone=None, num_classes=num_classes,
            min_size=min_size, max_size=max_size, **transform)
    else:
        backbone = plain_backbone(arch.split(":", 1)[1])
        anchors = AnchorGenerator(sizes=((32, 64, 128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),))
        pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
        model = FasterRCNN(backbone, num_classes=num_classes, rpn_anchor_generator=anchors,
                           box_roi_pool=pool, min_size=min_size, max_size=max_size, **transform)
    return model


def calibrate_batchnorm(model, images):
    """BatchNorm's running statistics set to these images' (one train-mode forward of the body
    at momentum 1): an untrained MobileNetV3 body in eval mode, on its initial statistics,
    passes almost nothing through its 16 blocks, and its detections are then all ties."""
    norms = [m for m in model.backbone.body.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model.backbone.body(model.transform(images)[0].tensors)
    for m in norms:
        m.momentum = 0.1
        m.num_batches_tracked.zero_()


def spread_scores(model, images, layers=None):
    """Redraws the score layers (a Faster R-CNN's two by default) so that their logits have a
    standard deviation of about 2 on these images (measured with a forward hook on each layer's
    input): an untrained model's scores are near-ties, whose order is rounding."""
    model.eval()
    if layers is None:
        layers = (model.rpn.head.cls_logits, model.roi_heads.box_predictor.cls_score)
    for layer in layers:
        seen = []
        hook = layer.register_forward_hook(lambda m, inputs, output: seen.append(inputs[0]))
        with torch.no_grad():
            model(images)
        hook.remove()
        x = torch.cat([t.flatten() for t in seen])
        fan_in = layer.weight[0].numel()
        with torch.no_grad():
            layer.weight.normal_(0, 2.0 / (x.pow(2).mean().sqrt().item() * fan_in ** 0.5 + 1e-12))
            layer.bias.normal_(0, 0.5)


def scene(num_classes, images, model, out_dir):
    """The two images' targets; the score layers spread over these images; the model's state_dict
    -> DIR/py_weights.pt. Returns the targets and the io dict holding images and targets."""
    targets = [
        {"boxes": torch.tensor([[10.0, 12.0, 60.0, 70.0], [50.0, 20.0, 110.0, 95.0]]),
         "labels": torch.tensor([1, num_classes - 1])},
        {"boxes": torch.tensor([[30.0, 15.0, 80.0, 60.0]]), "labels": torch.tensor([1])},
    ]
    if hasattr(model.backbone, "body") and any(
            isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.body.modules()):
        calibrate_batchnorm(model, images)
    spread_scores(model, images)
    torch.save(model.state_dict(), f"{out_dir}/py_weights.pt")
    io = {"seed": torch.tensor(SEED)}
    for i, (image, target) in enumerate(zip(images, targets)):
        io[f"image{i}"] = image
        io[f"boxes{i}"] = target["boxes"]
        io[f"labels{i}"] = target["labels"]
    return targets, io


def train_losses(model, images, targets, io):
    """The four train-mode losses after torch.manual_seed(SEED), also into io."""
    model.train()
    torch.manual_seed(SEED)
    losses = model(images, targets)
    for name, value in losses.items():
        io[name] = value.detach()
    return losses


def gradients_and_spread(model, losses, images, targets, io):
    """Every parameter's gradient of the losses' sum (grad.<name>), and torchvision's own
    sensitivity of each loss and gradient: how far it moves when the images move by 1e-6 (same
    seed), as spread.<loss> and spread.grad.<name> (the norm of the change). Where proposals are
    near ties (MobileNetV3's FPN: loss_classifier moves by 0.7%), the sampled RoIs change with
    the last bits, and a comparison can ask no more of gemel than of torchvision itself."""
    sum(losses.values()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    torch.manual_seed(SEED)
    moved = model([image + 1e-6 for image in images], targets)
    for name, value in moved.items():
        io[f"spread.{name}"] = (value.detach() - io[name]).abs()
    sum(moved.values()).backward()
    for name, p in model.named_parameters():
        if name in grads:
            io[f"grad.{name}"] = grads[name]
            io[f"spread.grad.{name}"] = (p.grad - grads[name]).norm()


def record_detections(model, images, io):
    """The eval-mode detections of `images` into io: det_boxes<i>, det_scores<i>, det_labels<i>."""
    model.eval()
    with torch.no_grad():
        detections = model(images)
    for i, d in enumerate(detections):
        io[f"det_boxes{i}"] = d["boxes"]
        io[f"det_scores{i}"] = d["scores"]
        io[f"det_labels{i}"] = d["labels"]


def float_errors(model, images, targets, io):
    """torchvision's own fp32 error on this machine: the model's eval detections and train
    losses (as record_detections and train_losses take them, in that order) in fp64, against
    the fp32 ones in io, as fperr.scores<i>, fperr.boxes<i> (the largest difference over the
    detections both keep) and fperr.<loss>. The test asks
    gemel's fp32 results to be within a small factor of this, so that a CPU whose float sums
    round differently (AVX2 against AVX-512) moves the bound with it."""
    model = model.double()
    images = [image.double() for image in images]
    targets = [{"boxes": t["boxes"].double(), "labels": t["labels"]} for t in targets]
    model.eval()
    with torch.no_grad():
        detections = model(images)
    for i, d in enumerate(detections):
        # Each fp32 detection against the fp64 one of its class that overlaps it most (near
        # ties may come in another order, or one side may keep a box the other drops): the
        # largest differences over the pairs that are the same detection (IoU above 0.999).
        boxes32, scores32 = io[f"det_boxes{i}"].double(), io[f"det_scores{i}"].double()
        labels32 = io[f"det_labels{i}"]
        if boxes32.shape[0] == 0 or d["boxes"].shape[0] == 0:
            continue
        iou = torchvision.ops.box_iou(boxes32, d["boxes"])
        iou[labels32[:, None] != d["labels"][None, :]] = 0
        best, at = iou.max(dim=1)
        pairs = best > 0.999
        if pairs.any():
            io[f"fperr.scores{i}"] = (scores32[pairs] - d["scores"][at[pairs]]).abs().max()
            io[f"fperr.boxes{i}"] = (boxes32[pairs] - d["boxes"][at[pairs]]).abs().max()
    model.train()
    torch.manual_seed(SEED)
    for name, value in model(images, targets).items():
        io[f"fperr.{name}"] = (value.detach() - io[name].double()).abs()


def make(arch, num_classes, out_dir):
    model = build(arch, num_classes, *sizes(arch))
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(3, 100, 120, generator=g), torch.rand(3, 90, 140, generator=g)]
    targets, io = scene(num_classes, images, model, out_dir)
    in_fp64 = copy.deepcopy(model)  # before the train-mode pass moves BatchNorm's statistics
    record_detections(model, images, io)
    losses = train_losses(model, images, targets, io)
    gradients_and_spread(model, losses, images, targets, io)
    float_errors(in_fp64, images, targets, io)
    torch.save(io, f"{out_dir}/py_io.pt")


def check(arch, num_classes, out_dir):
    model = build(arch, num_classes, *sizes(arch))
    mine = torch.load(f"{out_dir}/cpp_weights.pt")
    model.load_state_dict(mine, strict=True)
    theirs = torch.load(f"{out_dir}/py_weights.pt")
    for name, value in theirs.items():
        if not torch.equal(mine[name], value):
            print(f"{name} differs", file=sys.stderr)
            sys.exit(1)
    print(f"{len(mine)} tensors load strictly and match")


def coco_layout(num_classes, **transform):
    """fasterrcnn_resnet50_fpn as torchvision builds it for its COCO-pretrained weights:
    FrozenBatchNorm2d in the body (statistics drawn away from the defaults, so that a copy
    shows) and trainable_backbone_layers=3 (conv1 and layer1 take no gradient)."""
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops.misc import FrozenBatchNorm2d

    torch.manual_seed(0)
    body = torchvision.models.resnet50(norm_layer=FrozenBatchNorm2d)
    with torch.no_grad():
        for m in body.modules():
            if isinstance(m, FrozenBatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return FasterRCNN(_resnet_fpn_extractor(body, 3), num_classes=num_classes, **transform)


def frozen(num_classes, out_dir):
    state = coco_layout(num_classes).state_dict()
    if any(k.endswith("num_batches_tracked") for k in state):
        sys.exit("expected a state_dict without num_batches_tracked")
    torch.save(state, f"{out_dir}/py_weights.pt")
    print(f"{len(state)} tensors")


def frozen_step(num_classes, out_dir):
    """One fine-tuning step of the COCO layout: its state_dict, two images and their targets,
    the four train-mode losses after torch.manual_seed(SEED), and the gradient of every
    parameter that takes one ("grad." + name)."""
    model = coco_layout(num_classes, min_size=128, max_size=213)  # gemel's image_size 128
    g = torch.Generator().manual_seed(2)
    images = [torch.rand(3, 100, 120, generator=g) for _ in range(2)]
    targets, io = scene(num_classes, images, model, out_dir)
    losses = train_losses(model, images, targets, io)
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            io["grad." + name] = p.grad.detach().clone()
    torch.save(io, f"{out_dir}/py_io.pt")


def frozen_check(num_classes, out_dir):
    """DIR/cpp_weights.pt loads strictly into the COCO layout and into
    fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)."""
    mine = torch.load(f"{out_dir}/cpp_weights.pt")
    coco_layout(num_classes).load_state_dict(mine, strict=True)
    torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=num_classes).load_state_dict(mine,
                                                                                     strict=True)
    print(f"{len(mine)} tensors load strictly into both layouts")


def classifier(name, out_dir):
    """torchvision's NAME classifier (resnet50, resnet18, vgg16, mobilenet_v2) as weights_backbone
    would take it -> DIR/NAME.pt, BatchNorm statistics drawn away from the defaults."""
    torch.manual_seed(3)
    model = torchvision.models.__dict__[name]()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), f"{out_dir}/{name}.pt")


def score(arch, num_classes, min_size, max_size, model_path, data_path, gemel_detections=None):
    from coco_ref import coco_eval, compare_with_gemel, detections_of, ground_truth

    data = torch.load(data_path)
    transform = {"image_mean": data["mean"].tolist(), "image_std": data["std"].tolist()}
    if arch.startswith("ssd"):  # torchvision's SSD at the task's fixed size (MIN_SIZE)
        sys.path.insert(0, __file__.rsplit("/", 1)[0])
        import ssd_ref
        model = ssd_ref.build(arch, num_classes, size=min_size, **transform)
    else:
        model = build(arch, num_classes, min_size, max_size, **transform)
    model.load_state_dict(torch.load(model_path), strict=True)
    model.eval()
    rows = []
    x, index = data["images"], data["index"]
    with torch.no_grad():
        for start in range(0, x.shape[0], 16):
            for k, det in enumerate(model(list(x[start:start + 16]))):
                image = int(index[start + k])
                for box, s, label in zip(det["boxes"].tolist(), det["scores"].tolist(),
                                         det["labels"].tolist()):
                    rows.append([image, label - 1, s] + box)  # gemel's classes count from 0
    images = [int(i) for i in index]
    gt = ground_truth(images, int(data["classes"]), data["boxes"].tolist())
    m, m50 = coco_eval(gt, detections_of(rows))
    out = {"map": m, "map50": m50, "images": len(images), "detections": len(rows)}
    if gemel_detections:
        out.update(compare_with_gemel(rows, images, gemel_detections, gt))
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) in (8, 9) and sys.argv[1] == "score":
        score(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6],
              sys.argv[7], *sys.argv[8:])
        sys.exit(0)
    if len(sys.argv) == 4 and sys.argv[1] == "classifier":
        classifier(sys.argv[2], sys.argv[3])
        sys.exit(0)
    commands = {"frozen": frozen, "frozen_step": frozen_step, "frozen_check": frozen_check}
    if len(sys.argv) == 4 and sys.argv[1] in commands:
        commands[sys.argv[1]](int(sys.argv[2]), sys.argv[3])
        sys.exit(0)
    if len(sys.argv) != 5 or sys.argv[1] not in ("make", "check"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    (make if sys.argv[1] == "make" else check)(sys.argv[2], int(sys.argv[3]), sys.argv[4])
