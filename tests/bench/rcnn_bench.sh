#!/bin/bash
# Faster R-CNN or SSD training throughput: `gemel bench` against torchvision's own training step
# in Python (the same torch, from the project's .venv), in one run, same threads, same batch, fp32.
#   tests/bench/rcnn_bench.sh [ARCH=fasterrcnn:resnet18] [SIZE=128] [BATCH=4] [STEPS=5]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
arch="${1:-fasterrcnn:resnet18}" size="${2:-128}" batch="${3:-4}" steps="${4:-5}"
gemel="${GEMEL_BUILD_DIR:-$root/build}/src/gemel"
python="${GEMEL_PYTHON:-$root/.venv/bin/python}"
threads="${OMP_NUM_THREADS:-$(nproc)}"
ours=$("$gemel" bench --arch "$arch" --size "$size" --batch "$batch" --steps "$steps" \
  --classes 2 --threads "$threads" --modes fp32,fp32-cl --json)
theirs=$("$python" "$root/tests/bench/py_rcnn_step.py" "$arch" "$size" "$batch" "$steps" \
  "$threads" 2)
"$python" "$root/tests/bench/bench_util.py" compare "$ours" "$theirs" "$arch" "$size" "$batch" torchvision
