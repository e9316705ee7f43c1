#!/usr/bin/env python3
"""Whether two results.h5 files end the same search: the same trials with the same labels,
decisions, steps and models that met, and every tensor equal up to float noise (largest
relative difference <= 1e-5). The second must be finished (status done).

    same_results.py A.h5 B.h5 [TRIALS]     TRIALS: the number of trials both must hold

Used by the resume test (tests/merge/merge_cli_test.cpp) and the kill-anywhere soak
(tests/soak/kill_resume.sh). Exits non-zero, saying what differs, when they are not the same.
"""
import sys

import h5py
import numpy as np

a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert b.attrs["status"] == "done", b.attrs["status"]
ta, tb = a["search/trials"], b["search/trials"]
assert list(ta) == list(tb), (list(ta), list(tb))
if len(sys.argv) > 3:
    assert len(ta) == int(sys.argv[3]), (len(ta), sys.argv[3])
for n in ta:
    for k in ("label", "decision", "steps"):
        assert ta[n].attrs[k] == tb[n].attrs[k], (n, k, ta[n].attrs[k], tb[n].attrs[k])
    assert list(ta[n].attrs["met"]) == list(tb[n].attrs["met"]), n
names = []
a.visit(lambda n: names.append(n) if isinstance(a[n], h5py.Dataset) else None)
worst = 0.0
for n in names:
    if n == "memory/timeline":
        continue
    x, y = np.asarray(a[n], dtype=np.float64), np.asarray(b[n], dtype=np.float64)
    assert x.shape == y.shape, n
    if x.size:
        worst = max(worst, float(np.max(np.abs(x - y) / (1e-6 + np.abs(x)))))
print(f"{len(list(ta))} trials, {len(names)} tensors, largest relative difference {worst:.1e}")
assert worst <= 1e-5, worst
