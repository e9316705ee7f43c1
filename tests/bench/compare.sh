#!/bin/bash
# Joint training, gemel against Python PyTorch eager on the same workload, in one run: gemel
# bench times its modes and says which layers it tied; tests/bench/py_joint.py builds the same
# models with the same tying and times the same modes. Prints both tables and the ratio of the
# best modes.
#   tests/bench/compare.sh [ARCHS=resnet18,resnet18,resnet34,resnet50] [SIZE=64] [BATCH=32] [STEPS=10]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
archs="${1:-resnet18,resnet18,resnet34,resnet50}" size="${2:-64}" batch="${3:-32}" steps="${4:-10}"
gemel="${GEMEL_BUILD_DIR:-$root/build}/src/gemel"
python="${GEMEL_PYTHON:-$root/.venv/bin/python}"
threads="${OMP_NUM_THREADS:-$(nproc)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$gemel" bench --arch "$archs" --size "$size" --batch "$batch" --classes 10 --steps "$steps" \
  --threads "$threads" --json > "$work/gemel.json"
"$python" "$root/tests/bench/py_joint.py" "$work/gemel.json" "$steps" "$threads" > "$work/python.json"
"$python" - "$work/gemel.json" "$work/python.json" <<'PY'
import json, sys
ours, theirs = (json.load(open(p)) for p in sys.argv[1:3])
print(f"joint training of {ours['models']} at {ours['size'][0]} px, batch {ours['batch'][0]} per "
      f"model, {len(ours['shared'])} layers tied, {ours['threads']} threads on {ours['device']}")
print(f"  {'mode':<20} {'gemel':>10} {'Python':>10}   images/s")
by_mode = {m["mode"]: m["images_per_s"] for m in theirs["modes"]}
for m in ours["modes"]:
    print(f"  {m['mode']:<20} {m['images_per_s']:10.2f} {by_mode.get(m['mode'], float('nan')):10.2f}")
print(f"  best: gemel {ours['best_mode']} {ours['images_per_s']:.2f}, Python {theirs['best_mode']} "
      f"{theirs['images_per_s']:.2f}; ratio {ours['images_per_s'] / theirs['images_per_s']:.2f}x")
PY
