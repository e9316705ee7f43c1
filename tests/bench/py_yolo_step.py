"""PyTorch-YOLOv3's own training step in Python, timed: the reference for `gemel bench`.

  py_yolo_step.py CFG SIZE BATCH STEPS THREADS

Builds pytorchyolo's Darknet from CFG, and times STEPS steps (after 2 warm-up steps) of what
its train.py does per batch: forward in train mode, compute_loss, backward, an SGD step. The
batch is noise images in [0, 1] with 1-4 boxes each, the same every step (so data loading is not
counted; gemel's figure includes preparing its batch from uint8). Prints one JSON line.
"""
import sys
import types

sys.modules.setdefault("imgaug", types.ModuleType("imgaug"))  # see tests/models/yolo_ref.py

import torch  # noqa: E402
from pytorchyolo.models import Darknet  # noqa: E402
from pytorchyolo.utils.loss import compute_loss  # noqa: E402

from bench_util import report_training  # noqa: E402


def main(cfg, size, batch, steps, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Darknet(cfg)
    model.train()
    classes = model.yolo_layers[0].num_classes
    images = torch.rand(batch, 3, size, size)
    rows = []
    for i in range(batch):
        for k in range(1 + i % 4):
            w = 0.1 + 0.05 * k
            rows.append([i, (i + k) % classes, 0.1 + 0.17 * k + w / 2, 0.2 + 0.1 * (i % 5) + w * 0.65,
                         w, w * 1.3])
    targets = torch.tensor(rows)

    report_training(lambda: compute_loss(model(images), targets, model)[0], model, steps, batch,
                    threads)


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
