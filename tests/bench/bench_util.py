"""Shared by the Python reference benchmarks: timing a training step after a warm-up."""
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
