"""Reference side of the detection parity tests: PyTorch-YOLOv3 (`pytorchyolo`) and
pycocotools, installed into .venv by launch/common.sh. gemel writes its side into DIR; this
script computes the reference and compares.

  names CFG STATE.pt   pytorchyolo's Darknet(CFG) has the parameter and buffer names and the
                       shapes of STATE.pt (a state_dict written by gemel)
  run DIR              DIR/net.cfg, DIR/gemel.pt (weights), DIR/gemel.weights (the same, Darknet
                       format) and DIR/io.pt (inputs and gemel's outputs): raw outputs, decoded
                       boxes, boxes after NMS, the loss and every parameter's gradient, and
                       the .weights file loaded by pytorchyolo, all compared with gemel's
  bf16 DIR             DIR/net.cfg, DIR/gemel.pt and DIR/io.pt (inputs, gemel's fp32 and bf16
                       losses and gradients): pytorchyolo's under torch.autocast; gemel's bf16
                       gradients must be as close to its fp32 ones as PyTorch's are
  coco DIR             DIR/coco.json (ground truth, detections and gemel's mAP): pycocotools'
                       COCOeval on the same, compared with gemel's mAP@[.5:.95] and mAP@0.5
  score CFG MODEL DATA [GEMEL_DETECTIONS]
                       a model exported by gemel (its .cfg and .pt) in pytorchyolo, on DATA
                       (a .pt: val images as gemel feeds them, their dataset indices and
                       boxes): pytorchyolo's detections and NMS, pycocotools' mAP@0.5 and
                       mAP@[.5:.95], printed as JSON; with GEMEL_DETECTIONS (what `gemel eval
                       --detections` wrote for this model), also how many images have a
                       different number of detections there

Exit status 0 on success, 1 with a message on stderr on any mismatch.
"""
import json
import sys
import types

# pytorchyolo.utils.utils imports imgaug only to seed it (provide_determinism); imgaug itself
# does not import under numpy 2. Nothing here uses it.
sys.modules.setdefault("imgaug", types.ModuleType("imgaug"))

import torch  # noqa: E402
from pytorchyolo.models import Darknet  # noqa: E402
from pytorchyolo.utils.loss import compute_loss  # noqa: E402
from pytorchyolo.utils.utils import non_max_suppression  # noqa: E402

from coco_ref import coco_eval, compare_with_gemel, detections_of, ground_truth  # noqa: E402

TOLERANCE = 1e-4  # max |a - b| / max |b|
GRAD_TOLERANCE = 1e-4  # the same, per parameter's gradient
BF16_COSINE_MARGIN = 0.03  # bf16 gradients: gemel's cosine to fp32 may fall this far below PyTorch's
CONF, NMS_IOU = 0.01, 0.4  # gemel's validation thresholds (pytorchyolo's test.py defaults)


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def expect_close(what, got, want, tol=TOLERANCE):
    if got.shape != want.shape:
        fail(f"{what}: gemel's shape {tuple(got.shape)}, pytorchyolo's {tuple(want.shape)}")
    err = rel_err(got, want)
    print(f"{what}: relative error {err:.2e}")
    if err > tol:
        fail(f"{what}: relative error {err:.3e} > {tol}")


def names(cfg, state_path):
    ref = Darknet(cfg).state_dict()
    got = torch.load(state_path)
    # gemel writes parameters before buffers; load_state_dict goes by name, not order.
    missing = [k for k in ref if k not in got]
    extra = [k for k in got if k not in ref]
    if missing or extra:
        fail(f"names differ: missing {missing[:5]}, unexpected {extra[:5]}")
    for k, v in ref.items():
        if tuple(v.shape) != tuple(got[k].shape):
            fail(f"{k}: gemel's shape {tuple(got[k].shape)}, pytorchyolo's {tuple(v.shape)}")
    print(f"{cfg}: {len(ref)} tensors, names and shapes alike")


def run(d):
    io = torch.load(f"{d}/io.pt")
    x, targets = io["x"], io["targets"]
    model = Darknet(f"{d}/net.cfg")
    model.load_state_dict(torch.load(f"{d}/gemel.pt"))
    from_weights = Darknet(f"{d}/net.cfg")
    from_weights.load_darknet_weights(f"{d}/gemel.weights")

    # Eval mode: decoded boxes, then NMS.
    model.eval()
    from_weights.eval()
    with torch.no_grad():
        decoded = model(x)
        decoded_w = from_weights(x)
    expect_close("decoded (eval)", io["decoded"], decoded)
    expect_close("decoded, pytorchyolo loading gemel's .weights", io["decoded"], decoded_w)
    kept = non_max_suppression(decoded.clone(), conf_thres=CONF, iou_thres=NMS_IOU)
    for i, want in enumerate(kept):
        got = io[f"nms_{i}"]
        if got.shape != want.shape:
            fail(f"NMS image {i}: gemel kept {got.shape[0]} boxes, pytorchyolo {want.shape[0]}")
        # Same boxes; pytorchyolo's order among equal scores is torchvision's, so compare sorted.
        order_g = torch.argsort(got[:, 4], descending=True, stable=True)
        order_w = torch.argsort(want[:, 4], descending=True, stable=True)
        expect_close(f"NMS image {i} ({want.shape[0]} boxes)", got[order_g], want[order_w])

    # Train mode: raw heads (BatchNorm on batch statistics), then the loss.
    model.train()
    outputs = model(x)
    raw = torch.cat([o.reshape(o.shape[0], -1, o.shape[-1]) for o in outputs], 1)
    expect_close("raw heads (train)", io["raw"], raw.detach())
    loss, parts = compute_loss(outputs, targets, model)
    ref = torch.cat([loss.detach().view(1), parts[:3]])  # total, box, obj, cls
    expect_close("loss (total, box, obj, cls)", io["loss"], ref, tol=1e-5)
    # The gradient of the loss for every parameter.
    loss.backward()
    compared, worst, where = 0, 0.0, ""
    for name, p in model.named_parameters():
        got = io.get("grad." + name)
        if got is None:
            fail(f"gemel wrote no gradient for {name}")
        if p.grad is None:
            fail(f"pytorchyolo's loss does not reach {name}; gemel's does")
        if got.shape != p.grad.shape:
            fail(f"gradient of {name}: gemel's shape {tuple(got.shape)}, pytorchyolo's {tuple(p.grad.shape)}")
        err = rel_err(got, p.grad)
        if err > worst:
            worst, where = err, name
        compared += 1
    print(f"gradients of {compared} parameters: largest relative error {worst:.2e} ({where})")
    if worst > GRAD_TOLERANCE:
        fail(f"gradient of {where}: relative error {worst:.3e} > {GRAD_TOLERANCE}")


def cosine(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    return (a.dot(b) / (a.norm() * b.norm()).clamp_min(1e-30)).item()


def bf16(d):
    """gemel's bf16 training step against pytorchyolo's under torch.autocast: per parameter, the
    cosine between its bf16 and fp32 gradients must be at least PyTorch's own less a margin."""
    io = torch.load(f"{d}/io.pt")
    x, targets = io["x"], io["targets"]
    model = Darknet(f"{d}/net.cfg")
    model.load_state_dict(torch.load(f"{d}/gemel.pt"))
    model.train()
    ref = {}
    for tag in ("fp32", "bf16"):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=tag == "bf16"):
            outputs = model(x)
        loss, _ = compute_loss([o.float() for o in outputs], targets, model)
        loss.backward()
        ref[tag] = (loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()})
        expect_close(f"loss ({tag})", io[f"loss.{tag}"], torch.tensor([ref[tag][0]]),
                     tol=1e-4 if tag == "fp32" else 0.03)
    worst, where, compared = 1.0, "", 0
    for name, g32 in ref["fp32"][1].items():
        if g32.norm() < 1e-8:
            continue
        theirs = cosine(ref["bf16"][1][name], g32)
        ours = cosine(io[f"bf16.{name}"], io[f"fp32.{name}"])
        compared += 1
        if ours - theirs < worst:
            worst, where = ours - theirs, f"{name}: gemel {ours:.4f}, pytorchyolo {theirs:.4f}"
    print(f"bf16 against fp32 gradients, {compared} parameters: gemel's cosine less PyTorch's is "
          f"at least {worst:.4f} ({where})")
    if worst < -BF16_COSINE_MARGIN:
        fail(f"bf16 gradient further from fp32 than PyTorch's: {where}")


def coco(d):
    with open(f"{d}/coco.json") as f:
        spec = json.load(f)
    gt = ground_truth(spec["images"], spec["classes"], spec["truth"])
    m, m50 = coco_eval(gt, detections_of(spec["detections"]))
    print(f"pycocotools: mAP {m:.6f} mAP@0.5 {m50:.6f}; gemel: {spec['map']:.6f} "
          f"{spec['map50']:.6f}")
    if abs(m - spec["map"]) > TOLERANCE or abs(m50 - spec["map50"]) > TOLERANCE:
        fail("mAP differs from pycocotools' by more than 1e-4")


def score(cfg, model_path, data_path, gemel_detections=None):
    data = torch.load(data_path)
    model = Darknet(cfg)
    model.load_state_dict(torch.load(model_path))
    model.eval()
    rows, images = [], []
    x, index = data["images"], data["index"]
    with torch.no_grad():
        for start in range(0, x.shape[0], 32):
            kept = non_max_suppression(model(x[start:start + 32]), conf_thres=CONF,
                                       iou_thres=NMS_IOU)
            for k, det in enumerate(kept):
                image = int(index[start + k])
                for r in det.tolist():
                    rows.append([image, r[5], r[4], r[0], r[1], r[2], r[3]])
    images = [int(i) for i in index]
    gt = ground_truth(images, int(data["classes"]), data["boxes"].tolist())
    m, m50 = coco_eval(gt, detections_of(rows))
    out = {"map": m, "map50": m50, "images": len(images), "detections": len(rows)}
    if gemel_detections:
        out.update(compare_with_gemel(rows, images, gemel_detections, gt))
    print(json.dumps(out))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "names" and len(sys.argv) == 4:
        names(sys.argv[2], sys.argv[3])
    elif cmd in ("run", "coco", "bf16") and len(sys.argv) == 3:
        {"run": run, "coco": coco, "bf16": bf16}[cmd](sys.argv[2])
    elif cmd == "score" and len(sys.argv) in (5, 6):
        score(*sys.argv[2:])
    else:
        fail(__doc__)
