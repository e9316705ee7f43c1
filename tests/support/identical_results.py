#!/usr/bin/env python3
"""Whether two results.h5 files are bit-identical but for timings: every dataset equal byte for
byte, every attribute equal, except those that measure time (trial `seconds` and `started`, `search_seconds`,
`rank_busy_seconds` and `rank_idle_seconds`, the memory
timeline's seconds column). For refactors that must not change behaviour: run the same merge
with --fixed-steps before and after, and compare.

    identical_results.py A.h5 B.h5

Prints what differs and exits 1, or prints the count of what was compared and exits 0.
"""
import sys

import h5py
import numpy as np

TIMING_ATTRS = {"seconds", "started", "search_seconds", "rank_busy_seconds", "rank_idle_seconds"}


def items(f):
    out = {}

    def visit(name, obj):
        out[name] = obj

    f.visititems(visit)
    return out


def same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if a.dtype == object:  # strings
            return a.tolist() == b.tolist()
        return a.tobytes() == b.tobytes()
    return a == b


def main():
    fa, fb = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
    ia, ib = items(fa), items(fb)
    problems = []
    if sorted(ia) != sorted(ib):
        problems.append(f"objects differ: only in A {sorted(set(ia) - set(ib))[:5]}, "
                        f"only in B {sorted(set(ib) - set(ia))[:5]}")
    datasets = attrs = 0
    for name in sorted(set(ia) & set(ib)) + ["/"]:
        a, b = (fa, fb) if name == "/" else (ia[name], ib[name])
        for key in sorted(set(a.attrs) | set(b.attrs)):
            if key in TIMING_ATTRS:
                continue
            if key not in a.attrs or key not in b.attrs:
                problems.append(f"{name}: attribute {key} only in one file")
            elif not same(a.attrs[key], b.attrs[key]):
                problems.append(f"{name}: attribute {key}: {a.attrs[key]!r} against {b.attrs[key]!r}")
            attrs += 1
        if isinstance(a, h5py.Dataset):
            va, vb = a[()], b[()]
            if name == "memory/timeline":  # (seconds, bytes): only the bytes
                va, vb = va[:, 1], vb[:, 1]
            if not same(np.asarray(va), np.asarray(vb)):
                problems.append(f"{name}: values differ")
            datasets += 1
    for p in problems[:20]:
        print(p)
    if problems:
        print(f"{len(problems)} differences")
        return 1
    print(f"identical: {datasets} datasets and {attrs} attributes (timings left out)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
