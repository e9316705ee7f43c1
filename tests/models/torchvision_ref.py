"""Reference side of the parity tests, run with the pinned torch and torchvision wheels
(launch/requirements.txt, installed into .venv; CMake's GEMEL_PYTHON).

  make ARCH NUM_CLASSES DIR    torchvision model -> DIR/py_weights.pt (torch.save(state_dict)),
                               DIR/py_io.pt ({input, output, num_params}) in eval mode
  check ARCH NUM_CLASSES DIR   loads DIR/cpp_weights.pt (written by gemel) into the torchvision
                               model with strict load_state_dict, runs DIR/py_io.pt's input and
                               compares with DIR/cpp_io.pt's output; also compares gemel's
                               default initialisation with torchvision's, tensor by tensor
  grads ARCH NUM_CLASSES DIR [SIZE]
                               at SIZE px (default 16) in eval mode: DIR/py_weights.pt, and
                               DIR/py_grads.pt ({input, labels, loss, grad.<parameter>}) after
                               one cross-entropy backward (at 16 px maps reach 1x1 under strided
                               convs); parameters that get no gradient (Inception-v3's
                               AuxLogits, not run in eval mode) have no grad entry
  pickle ARCH NUM_CLASSES DIR  the whole model as the original Gemel's model files hold it,
                               torch.save(model) -> DIR/py_model.pt, beside its state_dict
                               (DIR/py_weights.pt) and DIR/py_io.pt as for make. ARCH is a
                               torchvision classifier (inception_v3 with aux_logits turned off
                               after building, as the original tool does), fasterrcnn:<backbone>
                               (the original tool's build, tests/models/rcnn_ref.py), ssd300_vgg16
                               and ssdlite320_mobilenet_v3_large (as the original tool builds them:
                               no pretrained backbone, every layer trainable), squeezenet1_0 (a
                               torchvision class gemel does not build), or "custom" (a class of
                               this script's own)
  script ARCH NUM_CLASSES OUT  torch.jit.script of the torchvision model -> OUT
  trace ARCH NUM_CLASSES OUT   torch.jit.trace of it -> OUT

Exit status 0 on success, 1 with a message on stderr on any mismatch.
"""
import sys

import torch
import torchvision

TOLERANCE = 1e-4  # max |a - b| / max |b|
INPUT_SIZE = 96
SMALL_SIZE = 16


def build(arch, num_classes, seed):
    torch.manual_seed(seed)
    return torchvision.models.__dict__[arch](num_classes=num_classes)


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def make(arch, num_classes, out_dir):
    model = build(arch, num_classes, seed=0).eval()
    x = torch.randn(2, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x)
    torch.save(model.state_dict(), f"{out_dir}/py_weights.pt")
    num_params = sum(p.numel() for p in model.parameters())
    torch.save({"input": x, "output": y, "num_params": torch.tensor(num_params)}, f"{out_dir}/py_io.pt")


def grads(arch, num_classes, out_dir, size=SMALL_SIZE):
    # Eval mode: BatchNorm over a batch of 1x1 maps (4 values a channel) would amplify
    # rounding (a different thread count moves the loss by 0.5%), and dropout would draw.
    model = build(arch, num_classes, seed=0).eval()
    x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(4) % num_classes
    loss = torch.nn.functional.cross_entropy(model(x), labels)
    loss.backward()
    torch.save(build(arch, num_classes, seed=0).state_dict(), f"{out_dir}/py_weights.pt")
    out = {"input": x, "labels": labels, "loss": loss.detach()}
    out.update({f"grad.{n}": p.grad for n, p in model.named_parameters() if p.grad is not None})
    torch.save(out, f"{out_dir}/py_grads.pt")


def check_init(arch, num_classes, cpp_state):
    """gemel's fresh model must be initialised like torchvision's: same statistics per tensor."""
    compare_init(arch, build(arch, num_classes, seed=2).state_dict(), cpp_state)


def compare_init(arch, ref, cpp_state):
    """Tensor by tensor: constants equal, random draws of the same spread and centre."""
    for name, expected in ref.items():
        got = cpp_state[name]
        if not expected.is_floating_point():
            if not torch.equal(got, expected):
                fail(f"{arch}: initial {name} is {got.tolist()}, torchvision has {expected.tolist()}")
            continue
        if expected.numel() < 256 or expected.std() == 0:
            # constants (BatchNorm 1/0, zero biases, running statistics) must match exactly;
            # small random tensors (nn.Linear's default bias) must stay in torchvision's range
            if expected.std() == 0 and not torch.equal(got, expected):
                fail(f"{arch}: initial {name} differs from torchvision's constant init")
            if got.abs().max() > expected.abs().max() * 1.5 + 1e-6 and expected.std() != 0:
                fail(f"{arch}: initial {name} range {got.abs().max():.4g} vs torchvision {expected.abs().max():.4g}")
            continue
        ratio = (got.std() / expected.std()).item()
        # Two independent draws: their means differ with a deviation of sqrt(2) std / sqrt(n).
        mean_tolerance = 5 * 2 ** 0.5 * expected.std() / expected.numel() ** 0.5
        if not 0.85 < ratio < 1.15 or abs(got.mean() - expected.mean()) > mean_tolerance:
            fail(f"{arch}: initial {name} has std {got.std():.4g} mean {got.mean():.3g}, "
                 f"torchvision {expected.std():.4g} mean {expected.mean():.3g}")


def check(arch, num_classes, in_dir):
    cpp_state = torch.load(f"{in_dir}/cpp_weights.pt")
    if not isinstance(cpp_state, dict):
        fail(f"cpp_weights.pt holds {type(cpp_state)}, not a dict")
    model = build(arch, num_classes, seed=3)
    model.load_state_dict(cpp_state, strict=True)  # raises on any missing/unexpected key or shape
    model.eval()
    io = torch.load(f"{in_dir}/py_io.pt")
    with torch.no_grad():
        y = model(io["input"])
    expected = torch.load(f"{in_dir}/cpp_io.pt")["output"]
    err = rel_err(y, expected)
    if not err <= TOLERANCE:
        fail(f"{arch}: torchvision output from gemel's weights differs from gemel's output: rel err {err:.3g}")
    check_init(arch, num_classes, cpp_state)
    print(f"{arch}: python side ok (rel err {err:.3g})")


class Custom(torch.nn.Module):
    """A model of the user's own class: its pickle names __main__.Custom."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)


def save_pickle(arch, num_classes, out_dir):
    x = torch.randn(2, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(1))
    if arch == "custom":
        model = Custom()
    elif arch in ("ssd300_vgg16", "ssdlite320_mobilenet_v3_large"):
        torch.manual_seed(0)
        model = torchvision.models.detection.__dict__[arch](
            weights=None, weights_backbone=None, num_classes=num_classes + 1)
    elif arch.startswith("fasterrcnn"):
        sys.path.insert(0, __file__.rsplit("/", 1)[0])
        import rcnn_ref
        model = rcnn_ref.build(arch, num_classes + 1)
    else:
        model = build(arch, num_classes, seed=0)
        if arch == "inception_v3":
            model.aux_logits = False
    model.eval()
    torch.save(model, f"{out_dir}/py_model.pt")
    torch.save(model.state_dict(), f"{out_dir}/py_weights.pt")
    if arch in ("custom", "squeezenet1_0") or "ssd" in arch or arch.startswith("fasterrcnn"):
        return
    with torch.no_grad():
        y = model(x)
    torch.save({"input": x, "output": y}, f"{out_dir}/py_io.pt")


def save_script(arch, num_classes, out, trace):
    model = build(arch, num_classes, seed=0).eval()
    if trace:
        module = torch.jit.trace(model, torch.randn(1, 3, 64, 64))
    else:
        module = torch.jit.script(model)
    torch.jit.save(module, out)


def main():
    command, arch, num_classes, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(2)
    if command == "make":
        make(arch, num_classes, path)
    elif command == "grads":
        grads(arch, num_classes, path, *(int(a) for a in sys.argv[5:6]))
    elif command == "check":
        check(arch, num_classes, path)
    elif command == "pickle":
        save_pickle(arch, num_classes, path)
    elif command in ("script", "trace"):
        save_script(arch, num_classes, path, trace=command == "trace")
    else:
        fail(f"unknown command {command}")


if __name__ == "__main__":
    main()
