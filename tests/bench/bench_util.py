"""Shared by the Python reference benchmarks: timing a training step after a warm-up, the JSON
line each prints, and the comparison the bench scripts print.

  bench_util.py compare OURS THEIRS ARCH SIZE BATCH REFERENCE
      OURS: `gemel bench --json`'s output; THEIRS: a reference step's JSON line; prints both
      throughputs and their ratio, REFERENCE naming the reference step
"""
import json
import sys
import time


def time_steps(step, steps, warmup=2):
    """Runs step() `warmup` times, then `steps` times; returns (seconds, last step's value)."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    value = None
    for _ in range(steps):
        value = step()
    return time.perf_counter() - start, value


def report(step, steps, batch, threads):
    """Times `step` (which returns the loss) and prints the reference's JSON line."""
    seconds, loss = time_steps(step, steps)
    print(json.dumps({"images_per_s": steps * batch / seconds, "steps": steps,
                      "seconds": seconds, "loss": loss.item(), "threads": threads}))


def report_training(loss_of, model, steps, batch, threads):
    """Times training steps as the reference scripts take them: loss_of() (forward and loss),
    backward, an SGD step (lr 1e-3, momentum 0.9, weight decay 5e-4, as gemel bench); prints
    the reference's JSON line."""
    import torch

    sgd = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    def step():
        loss = loss_of()
        sgd.zero_grad()
        loss.backward()
        sgd.step()
        return loss

    report(step, steps, batch, threads)


def compare(ours, theirs, arch, size, batch, reference):
    ours, theirs = json.loads(ours), json.loads(theirs)
    print(f"{arch} training at {size} px, batch {batch}, {ours['threads']} threads on "
          f"{ours['device']}:")
    for m in ours["modes"]:
        print(f"  gemel bench, {m['mode']:<18} {m['images_per_s']:8.2f} images/s")
    print(f"  {reference + ' step (Python):':<33}{theirs['images_per_s']:8.2f} images/s")
    print(f"  {'ratio gemel best / ' + reference + ':':<33}"
          f"{ours['images_per_s'] / theirs['images_per_s']:8.2f}x")


if __name__ == "__main__":
    if len(sys.argv) != 8 or sys.argv[1] != "compare":
        sys.exit(__doc__)
    compare(*sys.argv[2:8])
