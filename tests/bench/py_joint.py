"""The joint-training step of `gemel bench` in Python PyTorch eager: the reference figure.

  py_joint.py BENCH.json STEPS THREADS

BENCH.json is `gemel bench --json` output: the models, their image sizes and batches, and the
layers gemel tied ("task:module" lists). This script builds the same torchvision models (10
classes), ties the same layers (one nn.Parameter shared, so it appears once in the optimizer),
and times the same step on the same kind of data: uint8 images to float with a random
horizontal flip and normalisation, forward, cross-entropy per model, one backward, SGD with
momentum and weight decay (foreach). Modes: fp32, bf16 autocast, each with contiguous or
channels_last weights and inputs. Prints one JSON line with every mode and the best.
"""
import json
import sys

import torch
import torchvision

from bench_util import time_steps


def build(spec):
    torch.manual_seed(0)
    archs = spec["models"].split(",")
    names = [f"m{i}_{a}" for i, a in enumerate(archs)]
    models = {n: getattr(torchvision.models, a)(num_classes=10) for n, a in zip(names, archs)}
    for n, a in zip(names, archs):
        if a == "inception_v3":  # as the original Gemel uses it (the aux head still runs)
            models[n].aux_logits = False
    for instance in spec["shared"]:
        first = None
        for member in instance:
            task, module = member.split(":", 1)
            layer = models[task].get_submodule(module)
            if first is None:
                first = layer
                continue
            layer.weight = first.weight
            if getattr(first, "bias", None) is not None:
                layer.bias = first.bias
    return names, models


def time_mode(spec, steps, bf16, channels_last):
    names, models = build(spec)
    unique = {}
    for n in names:
        models[n].train()
        for p in models[n].parameters():
            unique[id(p)] = p
    params = list(unique.values())
    if channels_last:
        for p in params:
            if p.dim() == 4:
                p.data = p.data.contiguous(memory_format=torch.channels_last)
    sgd = torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=5e-4, foreach=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    data = []
    for n, b, s in zip(names, spec["batch"], spec["size"]):
        data.append((torch.randint(0, 256, (b, s, s, 3), dtype=torch.uint8),
                     torch.randint(0, 10, (b,))))

    def step():
        sgd.zero_grad(set_to_none=False)
        total = 0
        for n, (images, labels) in zip(names, data):
            x = images.permute(0, 3, 1, 2).float().div_(255)
            flip = torch.rand(x.shape[0]) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            x = (x - mean) / std
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = models[n](x)
            total = total + torch.nn.functional.cross_entropy(out.float(), labels)
        total.backward()
        sgd.step()
        return total

    seconds, loss = time_steps(step, steps)
    images = sum(spec["batch"])
    return {"mode": ("bf16" if bf16 else "fp32") + (" channels_last" if channels_last else ""),
            "images_per_s": steps * images / seconds, "loss": loss.item()}


def main(bench_json, steps, threads):
    with open(bench_json) as f:
        spec = json.load(f)
    torch.set_num_threads(threads)
    # The modes gemel timed ("fp32", "bf16 channels_last", ...): bf16 only where it is native.
    timed = {m["mode"] for m in spec["modes"]}
    modes = [time_mode(spec, steps, bf16, cl) for bf16 in (False, True) for cl in (False, True)
             if ("bf16" if bf16 else "fp32") + (" channels_last" if cl else "") in timed]
    best = max(modes, key=lambda m: m["images_per_s"])
    print(json.dumps({"modes": modes, "best_mode": best["mode"],
                      "images_per_s": best["images_per_s"], "threads": threads}))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
