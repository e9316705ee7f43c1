#!/bin/bash
# gemel train with its defaults (no --lr) from scratch on real data, one task per zoo arch:
#   tests/bench/train_from_scratch.sh [OUT_DIR] [EPOCHS]
# resnet18, resnet50, vgg11_bn, vgg16 and mobilenet_v2 on five Fashion-MNIST classes at 32 px,
# and yolov3-tiny on the demo's bags-on-street detector data at 128 px. Prints per task: arch,
# size, epochs, held-out and val score, chance, and the back-offs the run took.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${GEMEL_BUILD_DIR:-$root/build}"
out="${1:-$(mktemp -d /tmp/gemel-scratch.XXXXXX)}"
epochs="${2:-4}"
mkdir -p "$out"
"$build/data_tools/gemel-data" fashion-mnist --out "$out/fashion_CL.h5" --classes 0,1,5,8,9 \
  --size 32 --max-train 1500 --max-val 500 --log-level warn
[ -f "$out/demo/bags_street_yolov3tiny_OD.h5" ] ||
  "$build/data_tools/gemel-data" demo --out "$out/demo" --log-level warn > /dev/null
cat > "$out/scratch.yaml" <<YAML
name: scratch
defaults: {batch_size: 32, image_size: 32}
tasks:
  - {name: f_resnet18, arch: resnet18, num_classes: 5, dataset: fashion_CL.h5}
  - {name: f_resnet50, arch: resnet50, num_classes: 5, dataset: fashion_CL.h5}
  - {name: f_vgg11_bn, arch: vgg11_bn, num_classes: 5, dataset: fashion_CL.h5}
  - {name: f_vgg16, arch: vgg16, num_classes: 5, dataset: fashion_CL.h5}
  - {name: f_mobilenet_v2, arch: mobilenet_v2, num_classes: 5, dataset: fashion_CL.h5}
  - {name: bags_yolov3tiny, arch: yolov3-tiny, kind: detection, num_classes: 2, image_size: 128,
     batch_size: 16, dataset: demo/bags_street_yolov3tiny_OD.h5,
     transforms: {mean: [0, 0, 0], std: [1, 1, 1], hflip: true, scale_jitter: 0.2}}
YAML
log="$out/train.log"
"$build/src/gemel" train --config "$out/scratch.yaml" --epochs "$epochs" --out "$out/trained" \
  > "$log" 2>&1 || { tail -20 "$log"; exit 1; }
echo "gemel train from scratch, default step (search.lr), $epochs epochs; $(nproc) cores"
printf "%-14s %5s %7s %9s %9s %7s %9s\n" arch size epochs held-out val chance back-offs
while read -r name arch ep _ held val metric _; do
  case "$arch" in yolov3-tiny) size=128; chance="~0" ;; *) size=32; chance=0.20 ;; esac
  backoffs=$(grep -c "task '$name': .*starting again at lr" "$log" || true)
  printf "%-14s %5s %7s %9s %9s %7s %9s\n" "$arch" "$size" "$ep" "$held" "$val" "$chance" "$backoffs"
done < <(grep -E '^(f_|bags_)' "$log")
grep -q "not finite\|error" "$log" && echo "(the log has errors: $log)" || true
