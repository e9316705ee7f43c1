"""Reference side of the SSD parity tests (tests/models/ssd_parity_test.cpp), run with the pinned
torch and torchvision wheels (CMake's GEMEL_PYTHON). ARCH is ssd300_vgg16 or
ssdlite320_mobilenet_v3_large, built as the original Gemel builds them: no pretrained weights or
backbone, every backbone layer trainable.

  make ARCH NUM_CLASSES DIR   the model -> DIR/py_weights.pt (its state_dict, score layers
                              redrawn so that scores spread), DIR/py_io.pt: two images of one
                              size (image0, image1), their ground truth (boxes<i>, labels<i>), the
                              eval-mode detections (det_boxes<i>, det_scores<i>, det_labels<i>),
                              the two train-mode losses (bbox_regression, classification), then
                              with every BatchNorm on its running statistics and frozen, the
                              losses again (frozen.<name>) and every other parameter's gradient
                              after their sum's backward (grad.<name>)
  check ARCH NUM_CLASSES DIR  DIR/cpp_weights.pt (gemel's freshly initialised model) loads into
                              torchvision's with strict load_state_dict, and its tensors have
                              torchvision's default initialisation (torchvision_ref.compare_init)

Exit status 0 on success, 1 with a message on stderr on any mismatch.
"""
import copy
import sys

import torch
import torchvision

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import rcnn_ref  # noqa: E402
import torchvision_ref  # noqa: E402

HEIGHT, WIDTH = 200, 260


def build(arch, num_classes, seed=0, size=None, **transform):
    """torchvision's ARCH; with `size`, its fixed input side set to SIZE as gemel sets a task's
    image_size, and image_mean / image_std as given."""
    torch.manual_seed(seed)
    # Without pretrained weights torchvision trains every backbone layer (its
    # trainable_backbone_layers default then), as the original Gemel asks.
    model = torchvision.models.detection.__dict__[arch](
        weights=None, weights_backbone=None, num_classes=num_classes, **transform)
    if size is not None:
        model.transform.min_size, model.transform.max_size = (size,), size
        model.transform.fixed_size = (size, size)
    return model


def score_layers(model):
    for layer in model.head.classification_head.module_list:
        yield layer if isinstance(layer, torch.nn.Conv2d) else layer[-1]


def make(arch, num_classes, out_dir):
    model = build(arch, num_classes)
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(3, HEIGHT, WIDTH, generator=g) for _ in range(2)]
    targets = [
        {"boxes": torch.tensor([[10.0, 12.0, 90.0, 110.0], [120.0, 40.0, 250.0, 180.0]]),
         "labels": torch.tensor([1, num_classes - 1])},
        {"boxes": torch.tensor([[30.0, 15.0, 80.0, 60.0]]), "labels": torch.tensor([1])},
    ]
    rcnn_ref.spread_scores(model, images, list(score_layers(model)))
    torch.save(model.state_dict(), f"{out_dir}/py_weights.pt")
    io = {}
    for i, (image, target) in enumerate(zip(images, targets)):
        io[f"image{i}"] = image
        io[f"boxes{i}"] = target["boxes"]
        io[f"labels{i}"] = target["labels"]
    rcnn_ref.record_detections(model, images, io)
    model.train()
    losses = model(images, targets)
    for name, value in losses.items():
        io[name] = value.detach()
    # torchvision's own fp32 error against fp64 on this machine (fperr.*), which scales the
    # test's tolerances as RcnnParity's
    rcnn_ref.float_errors(copy.deepcopy(model), images, targets, io)
    # Gradients with BatchNorm on its running statistics (SSDlite): over two images, the extra
    # blocks' 1x1 maps give BatchNorm two values a channel, and their batch statistics make
    # gradients of 1e13 whose float rounding is all there is to compare.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
            m.weight.requires_grad_(False)
            m.bias.requires_grad_(False)
    losses = model(images, targets)
    for name, value in losses.items():
        io[f"frozen.{name}"] = value.detach()
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        if p.grad is not None:
            io[f"grad.{name}"] = p.grad
    torch.save(io, f"{out_dir}/py_io.pt")


def check(arch, num_classes, in_dir):
    mine = torch.load(f"{in_dir}/cpp_weights.pt")
    model = build(arch, num_classes, seed=2)
    model.load_state_dict(mine, strict=True)  # raises on any missing/unexpected key or shape
    torchvision_ref.compare_init(arch, build(arch, num_classes, seed=3).state_dict(), mine)
    print(f"{arch}: {len(mine)} tensors load strictly, initialised as torchvision's")


def main():
    command, arch, num_classes, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(2)
    if command == "make":
        make(arch, num_classes, path)
    elif command == "check":
        check(arch, num_classes, path)
    else:
        torchvision_ref.fail(f"unknown command {command}")


if __name__ == "__main__":
    main()
