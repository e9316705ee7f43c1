#!/bin/bash
# YOLOv3-tiny training throughput: `gemel bench` against PyTorch-YOLOv3's own training step in
# Python (the same torch, from the project's .venv), in one run, same threads, same batch.
#   tests/bench/yolo_bench.sh [SIZE=416] [BATCH=8] [STEPS=10] [ARCH=yolov3-tiny]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
size="${1:-416}" batch="${2:-8}" steps="${3:-10}" arch="${4:-yolov3-tiny}"
gemel="${GEMEL_BUILD_DIR:-$root/build}/src/gemel"
python="${GEMEL_PYTHON:-$root/.venv/bin/python}"
threads="${OMP_NUM_THREADS:-$(nproc)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The same network for both: the shipped cfg with 80 classes.
cfg="$root/configs/models/$arch.cfg"
ours=$("$gemel" bench --arch "$arch" --size "$size" --batch "$batch" --steps "$steps" \
  --classes 80 --threads "$threads" --json)
theirs=$("$python" "$root/tests/bench/py_yolo_step.py" "$cfg" "$size" "$batch" "$steps" "$threads")
"$python" "$root/tests/bench/bench_util.py" compare "$ours" "$theirs" "$arch" "$size" "$batch" pytorchyolo
