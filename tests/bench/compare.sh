#!/bin/bash
# Joint training, gemel against Python PyTorch eager on the same workload, in one run: gemel
# bench times its modes and says which layers it tied; tests/bench/py_joint.py builds the same
# models with the same tying and times the same modes. Prints both tables and the ratio of the
# best modes.
#   tests/bench/compare.sh [ARCHS=resnet18,resnet18,resnet34,resnet50] [SIZE=64] [BATCH=32] [STEPS=10]
# REPEAT=N (default 3) runs gemel and Python one after the other N times and reports each mode's
# median: on a shared 2-core VM one run of either varies by 15% or more from the next.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
archs="${1:-resnet18,resnet18,resnet34,resnet50}" size="${2:-64}" batch="${3:-32}" steps="${4:-10}"
repeat="${REPEAT:-3}"
gemel="${GEMEL_BUILD_DIR:-$root/build}/src/gemel"
python="${GEMEL_PYTHON:-$root/.venv/bin/python}"
threads="${OMP_NUM_THREADS:-$(nproc)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for run in $(seq 1 "$repeat"); do
  "$gemel" bench --arch "$archs" --size "$size" --batch "$batch" --classes 10 --steps "$steps" \
    --threads "$threads" --json > "$work/gemel.$run.json"
  # Python times the modes gemel timed that it has (a CUDA graph is gemel's own).
  "$python" "$root/tests/bench/py_joint.py" "$work/gemel.$run.json" "$steps" "$threads" > "$work/python.$run.json"
done
"$python" - "$work" "$repeat" <<'PY'
import json, statistics, sys
work, repeat = sys.argv[1], int(sys.argv[2])
ours = [json.load(open(f"{work}/gemel.{r}.json")) for r in range(1, repeat + 1)]
theirs = [json.load(open(f"{work}/python.{r}.json")) for r in range(1, repeat + 1)]
def medians(runs):
    out = {}
    for run in runs:
        for m in run["modes"]:
            out.setdefault(m["mode"], []).append(m["images_per_s"])
    return {k: (statistics.median(v), v) for k, v in out.items()}
g, p = medians(ours), medians(theirs)
first = ours[0]
print(f"joint training of {first['models']} at {first['size'][0]} px, batch {first['batch'][0]} per "
      f"model, {len(first['shared'])} layers tied, {first['threads']} threads on {first['device']}; "
      f"median of {repeat} runs each")
print(f"  {'mode':<28} {'gemel':>10} {'Python':>10}   images/s (each run)")
for mode, (value, runs) in g.items():
    other = p.get(mode)
    runs_text = ", ".join(f"{v:.1f}" for v in runs)
    if other:
        runs_text += " | " + ", ".join(f"{v:.1f}" for v in other[1])
    print(f"  {mode:<28} {value:10.2f} {other[0] if other else float('nan'):10.2f}   ({runs_text})")
best_g = max(g.items(), key=lambda kv: kv[1][0])
best_p = max(p.items(), key=lambda kv: kv[1][0])
print(f"  best: gemel {best_g[0]} {best_g[1][0]:.2f}, Python {best_p[0]} {best_p[1][0]:.2f}; "
      f"ratio {best_g[1][0] / best_p[1][0]:.2f}x")
PY
