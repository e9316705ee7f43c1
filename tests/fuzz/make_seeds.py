#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (corpus/<harness>/) from real inputs: the shipped workload
examples and Darknet cfgs, small files in gemel's own formats, and torch.save archives.

    .venv/bin/python tests/fuzz/make_seeds.py [PROFILE.h5 RESULTS.h5]

The profile and results seeds are cut down from a real `gemel profile` P.h5 and a real
`gemel merge` results.h5 (every tensor shortened to a few values: the reader does not check
shapes against models, so the structure is what matters). Their outputs are committed; run
this again only when a format changes.
"""
import io
import os
import shutil
import struct
import sys

import h5py
import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))


def out(harness, name):
    d = os.path.join(here, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, name)


# Workloads: the shipped examples.
for f in sorted(os.listdir(os.path.join(root, "configs", "examples"))):
    if f.endswith(".yaml"):
        shutil.copy(os.path.join(root, "configs", "examples", f), out("workload", f))

# Darknet cfgs: the first byte is the number of classes.
for f, classes in (("yolov3-tiny.cfg", 2), ("yolov3.cfg", 4)):
    text = open(os.path.join(root, "configs", "models", f), "rb").read()
    open(out("darknet_cfg", f), "wb").write(bytes([classes]) + text)


def dataset(path, kind, n, size, classes, rng):
    with h5py.File(path, "w", libver=("v110", "latest")) as f:
        f.attrs["format"] = "gemel-dataset"
        f.attrs["version"] = np.int64(1)
        f.attrs["kind"] = kind
        f.attrs["classes"] = [f"c{i}" for i in range(classes)]
        f.attrs["height"] = np.int64(size)
        f.attrs["width"] = np.int64(size)
        f.attrs["channels"] = np.int64(3)
        for split in ("train", "val"):
            g = f.create_group(split)
            g.create_dataset("images", data=rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8),
                             chunks=(1, size, size, 3), maxshape=(None, size, size, 3))
            if kind == "classification":
                g.create_dataset("labels", data=rng.integers(0, classes, n).astype(np.int64),
                                 maxshape=(None,))
            else:
                counts = rng.integers(0, 3, n)
                boxes = []
                for c in counts:
                    for _ in range(c):
                        x, y = rng.uniform(0, size / 2, 2)
                        boxes.append([rng.integers(0, classes), x, y, x + size / 4, y + size / 4])
                g.create_dataset("boxes", data=np.asarray(boxes, dtype=np.float32).reshape(-1, 5),
                                 maxshape=(None, 5))
                g.create_dataset("box_index", data=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                                 maxshape=(None,))


rng = np.random.default_rng(0)
dataset(out("dataset", "classes_CL.h5"), "classification", 4, 8, 3, rng)
dataset(out("dataset", "boxes_OD.h5"), "detection", 4, 16, 2, rng)

# torch.save archives: floats, ints, halves, a view into a shared storage, an empty tensor.
base = torch.arange(12, dtype=torch.float32)
states = {
    "plain.pt": {"conv.weight": torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(0)),
                 "conv.bias": torch.zeros(4), "bn.num_batches_tracked": torch.tensor(7)},
    "views.pt": {"a": base[:6].view(2, 3), "b": base[6:], "t": base.view(3, 4).t()},
    "dtypes.pt": {"h": torch.ones(3, dtype=torch.float16), "d": torch.ones(2, dtype=torch.float64),
                  "i": torch.arange(3, dtype=torch.int32), "e": torch.empty(0)},
}
for name, state in states.items():
    torch.save(state, out("state_dict", name))

# Darknet weights for the harness's network: header (0.2.0, seen as int64), then BatchNorm
# bias, weight, mean, variance (8 each) and the conv weights [8,3,3,3]; the head's bias (21)
# and weights [21,8,1,1].
values = np.random.default_rng(1).standard_normal(8 * 4 + 8 * 27 + 21 + 21 * 8).astype(np.float32)
with open(out("darknet_weights", "small.weights"), "wb") as f:
    f.write(struct.pack("<iiiq", 0, 2, 0, 0))
    f.write(values.tobytes())
with open(out("darknet_weights", "old_header.weights"), "wb") as f:
    f.write(struct.pack("<iiii", 0, 1, 0, 0))
    f.write(values.tobytes())


def shrink(src, dst):
    """A copy with every attribute and group, and each dataset cut to at most 4 values."""
    with h5py.File(src, "r") as a, h5py.File(dst, "w", libver=("v110", "latest")) as b:
        for k, v in a.attrs.items():
            b.attrs[k] = v

        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                g = b.require_group(name)
            else:
                data = obj[()]
                if data.ndim and data.size > 4 and name not in ("search/state/streams",):
                    data = data.reshape(-1)[:4]
                g = b.create_dataset(name, data=data)
            for k, v in obj.attrs.items():
                g.attrs[k] = v

        a.visititems(copy)


def damaged_heaps(harness, src):
    """Copies of a seed whose global heap (no checksum in any HDF5 format) is damaged: the
    collection's size, and its first object's size, too large or zero. HDF5 1.10.8 overflowed
    or looped on such heaps; gemel reads them itself."""
    b = open(src, "rb").read()
    at = b.find(b"GCOL")
    for name, field, value in (("heap_collection_too_large", 8, 1 << 62),
                               ("heap_object_too_large", 16 + 8, 1 << 62),
                               ("heap_object_of_size_zero", 16 + 8, 0)):
        d = bytearray(b)
        d[at + field: at + field + 8] = value.to_bytes(8, "little")
        open(out(harness, name + ".h5"), "wb").write(bytes(d))


damaged_heaps("dataset", out("dataset", "classes_CL.h5"))
if len(sys.argv) == 3:
    shutil.copy(sys.argv[1], out("profile", "P.h5"))
    shrink(sys.argv[2], out("results", "results.h5"))
    damaged_heaps("profile", out("profile", "P.h5"))
    damaged_heaps("results", out("results", "results.h5"))
print("seeds written under", os.path.join(here, "corpus"))
