"""torchvision's own Faster R-CNN or SSD training step in Python, timed: the reference for
`gemel bench`.

  py_rcnn_step.py ARCH SIZE BATCH STEPS THREADS CLASSES

Builds torchvision's detector as gemel builds ARCH (tests/models/rcnn_ref.py: no pretrained
weights, BatchNorm2d) for CLASSES object classes plus the background, with the transform gemel
gives a task of image_size SIZE (min_size SIZE, max_size SIZE * 1333 / 800 rounded), and times
STEPS steps (after 2 warm-up steps) of what torchvision's reference train_one_epoch does per
batch: forward in train mode with the targets, the sum of the losses, backward, an SGD
step. The batch is noise images in [0, 1] with the boxes of gemel bench's synthetic batch, the
same every step. An SSD (ssd300_vgg16, ssdlite320_mobilenet_v3_large) is torchvision's
builder's, no pretrained weights, with its fixed size set to SIZE (tests/models/ssd_ref.py).
Prints one JSON line.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
from bench_util import report_training  # noqa: E402
from rcnn_ref import build  # noqa: E402
import ssd_ref  # noqa: E402


def main(arch, size, batch, steps, threads, classes):
    torch.set_num_threads(threads)
    if arch.startswith("ssd"):
        model = ssd_ref.build(arch, classes + 1, size=size)
    else:
        model = build(arch, classes + 1, size, (size * 1333 + 400) // 800)
    model.train()
    images = list(torch.rand(batch, 3, size, size))
    targets = []
    for i in range(batch):
        boxes, labels = [], []
        for k in range(1 + i % 4):
            w, x, y = size * (0.1 + 0.05 * k), size * (0.1 + 0.17 * k), size * (0.2 + 0.1 * (i % 5))
            boxes.append([x, y, x + w, y + w * 1.3])
            labels.append((i + k) % classes + 1)
        targets.append({"boxes": torch.tensor(boxes), "labels": torch.tensor(labels)})

    report_training(lambda: sum(model(images, targets).values()), model, steps, batch, threads)


if __name__ == "__main__":
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
         int(sys.argv[6]))
