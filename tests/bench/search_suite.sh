#!/bin/bash
# The merge search on workloads it was not developed on:
#   tests/bench/search_suite.sh [OUT_DIR] [WORKLOAD...]
# Five workloads built from the data Debian ships (Fashion-MNIST; opencv-doc's street video and
# digits sheet), each unlike the others and unlike `street`, plus `street` itself at four
# search.lr settings. Every workload is trained from scratch with `gemel train` (its defaults),
# merged with `gemel merge --threads 1 --time-budget $GEMEL_SUITE_BUDGET` (900 s), two merges
# at a time on the 2-core box, and scored again with `gemel eval`. The table gives, per run, the
# share of the possible savings confirmed after 5, 10 and 15 minutes, the trials by decision and
# whether every task met its target in eval; then the median and the worst.
#
#   workload    models                                     px      val         classes  lr
#   tops4       vgg11_bn, mobilenet_v2, resnet18, resnet34  32      200 each    balanced absent
#   street_mix  mobilenet_v2, resnet50, resnet18            48      706-1000    skewed   0.001
#   yolo_vgg    yolov3-tiny, vgg16, vgg11_bn                128/32  300-2000    skewed   0.02
#   eight       4 resnet18, 2 resnet34, 2 mobilenet_v2      32-40   150-400     mixed    0.05
#   digits_res  resnet50, resnet18, resnet34, mobilenet_v2  32-64   400-2000    mixed    absent
#   street@LR   street (2 resnet18, resnet34)               64      706-1000    skewed   absent,
#                                                                                        0.001, 0.02, 0.05
# Each run trains its workload's baselines first unless they exist (street's four runs share
# one training); stages are skipped when their output exists, so a rerun goes on where a
# stopped one ended.
# GEMEL_SUITE_JOBS (2) runs at a time; GEMEL_SUITE_BUDGET (900) seconds per merge.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${GEMEL_BUILD_DIR:-$root/build}"
gemel="$build/src/gemel"
gemel_data="$build/data_tools/gemel-data"
python="${GEMEL_PYTHON:-$root/.venv/bin/python}"
train_only=""
if [ "${1:-}" = --train ]; then  # the script itself, under a lock: train one workload
  train_only="$3"
  shift
fi
out="${1:-$(mktemp -d /tmp/gemel-suite.XXXXXX)}"
shift || true
mkdir -p "$out"
out="$(cd "$out" && pwd)"
budget="${GEMEL_SUITE_BUDGET:-900}"
jobs="${GEMEL_SUITE_JOBS:-2}"
# The longest trainings first, so that no core waits at the end.
all_runs=(yolo_vgg street@absent digits_res tops4 street_mix eight street@0.001 street@0.02
  street@0.05)
runs=("${@:-${all_runs[@]}}")
data="$out/data"
mkdir -p "$data"
[ -n "$train_only" ] || echo "search suite in $out: ${runs[*]}; $budget s per merge, $jobs at a time, $(nproc) cores"

fashion() {  # fashion FILE CLASSES SIZE TRAIN VAL [FRACTIONS]
  [ -f "$data/$1" ] && return 0
  "$gemel_data" fashion-mnist --out "$data/$1" --classes "$2" --size "$3" --max-train "$4" \
    --max-val "$5" ${6:+--fractions "$6"} --log-level warn
}

build_data() {
  local s
  for s in 32 48 64; do
    [ -f "$data/street$s/street.yaml" ] ||
      "$gemel_data" street --out "$data/street$s" --size "$s" --log-level warn > /dev/null
  done
  [ -f "$data/demo/bags_street_yolov3tiny_OD.h5" ] ||
    "$gemel_data" demo --out "$data/demo" --log-level warn > /dev/null
  fashion f_shoes32.h5 5,7,9 32 1500 200
  fashion f_bottoms32.h5 1,3,4 32 1500 200
  fashion f_tops32.h5 0,2,4,6 32 1500 200
  fashion f_all32.h5 0,1,2,3,4,5,6,7,8,9 32 1500 200
  fashion f_all10_32.h5 0,1,2,3,4,5,6,7,8,9 32 2500 2000
  fashion f_carry32_skew.h5 8,0,1 32 1500 400 1,0.3,0.1
  fashion f_tops64_skew.h5 2,4,6 64 1200 400 1,0.4,0.15
  fashion e_a32.h5 0,6 32 600 150
  fashion e_b32_skew.h5 5,7,9 32 600 200 1,0.5,0.2
  fashion e_c36.h5 1,3 36 600 150
  fashion e_d40_skew.h5 2,4,6,0 40 600 300 1,0.6,0.3,0.1
  fashion e_e32.h5 8,9 32 600 150
  fashion e_f36_skew.h5 0,1,2,3,4 36 700 400 1,0.8,0.5,0.3,0.1
  fashion e_g32.h5 7,5 32 600 150
  fashion e_h40.h5 3,4,6 40 600 200
}

# The transforms gemel-data street measured for one of its tasks (digits: no flips).
street_tf() {  # street_tf SIZE TASK
  local tf
  tf=$(grep -A5 "name: $2" "$data/street$1/street.yaml" | sed -n 's/^ *transforms: //p')
  [ "$2" = digits_resnet34 ] && tf="${tf/hflip: true/hflip: false}"
  echo "$tf"
}

fashion_tf='{mean: [0.286, 0.286, 0.286], std: [0.353, 0.353, 0.353], hflip: true, crop_padding: 4}'

task() {  # task NAME ARCH CLASSES SIZE DATASET TRANSFORMS
  printf '  - {name: %s, arch: %s, num_classes: %s, image_size: %s, dataset: %s,\n     transforms: %s}\n' \
    "$1" "$2" "$3" "$4" "$5" "$6"
}

header() {  # header NAME LR
  printf 'name: %s\ndatasets_dir: %s\ndefaults: {batch_size: 32}\n' "$1" "$data"
  [ "$2" = absent ] && printf 'tasks:\n' || printf 'search: {lr: %s}\ntasks:\n' "$2"
}

write_config() {  # write_config WORKLOAD -> $out/WORKLOAD/WORKLOAD.yaml
  local w="$1" y="$out/$1/$1.yaml"
  mkdir -p "$out/$w"
  {
    case "$w" in
      tops4)
        header tops4 absent
        task shoes_vgg11 vgg11_bn 3 32 f_shoes32.h5 "$fashion_tf"
        task bottoms_mnv2 mobilenet_v2 3 32 f_bottoms32.h5 "$fashion_tf"
        task tops_r18 resnet18 4 32 f_tops32.h5 "$fashion_tf"
        task all_r34 resnet34 10 32 f_all32.h5 "$fashion_tf"
        ;;
      street_mix)
        header street_mix 0.001
        task near_mnv2 mobilenet_v2 2 48 street48/street_near_CL.h5 \
          "$(street_tf 48 street_near_resnet18)"
        task far_r50 resnet50 2 48 street48/street_far_CL.h5 "$(street_tf 48 street_far_resnet18)"
        task digits_r18 resnet18 10 48 street48/digits_CL.h5 "$(street_tf 48 digits_resnet34)"
        ;;
      yolo_vgg)
        header yolo_vgg 0.02
        printf '  - {name: bags_yolo, arch: yolov3-tiny, kind: detection, num_classes: 2, image_size: 128,\n'
        printf '     batch_size: 16, dataset: demo/bags_street_yolov3tiny_OD.h5,\n'
        printf '     transforms: {mean: [0, 0, 0], std: [1, 1, 1], hflip: true, scale_jitter: 0.2}}\n'
        task all_vgg16 vgg16 10 32 f_all10_32.h5 "$fashion_tf"
        task carry_vgg11 vgg11_bn 3 32 f_carry32_skew.h5 "$fashion_tf"
        ;;
      eight)
        header eight 0.05
        task a_r18 resnet18 2 32 e_a32.h5 "$fashion_tf"
        task b_r18 resnet18 3 32 e_b32_skew.h5 "$fashion_tf"
        task c_r34 resnet34 2 36 e_c36.h5 "$fashion_tf"
        task d_mnv2 mobilenet_v2 4 40 e_d40_skew.h5 "$fashion_tf"
        task e_r18 resnet18 2 32 e_e32.h5 "$fashion_tf"
        task f_r34 resnet34 5 36 e_f36_skew.h5 "$fashion_tf"
        task g_mnv2 mobilenet_v2 2 32 e_g32.h5 "$fashion_tf"
        task h_r18 resnet18 3 40 e_h40.h5 "$fashion_tf"
        ;;
      digits_res)
        header digits_res absent
        task digits_r50 resnet50 10 32 street32/digits_CL.h5 "$(street_tf 32 digits_resnet34)"
        task all_r18 resnet18 10 32 f_all10_32.h5 "$fashion_tf"
        task tops_r34 resnet34 3 64 f_tops64_skew.h5 "$fashion_tf"
        task near_mnv2 mobilenet_v2 2 32 street32/street_near_CL.h5 \
          "$(street_tf 32 street_near_resnet18)"
        ;;
      street)  # gemel-data street's own workload, trained once for the four lr runs
        sed "s|^datasets_dir: .*|datasets_dir: $data/street64|" "$data/street64/street.yaml"
        ;;
      *) echo "unknown workload '$w'; known: ${all_runs[*]}" >&2 && return 2 ;;
    esac
  } > "$y.tmp"
  mv "$y.tmp" "$y"
}

# Epochs of the baselines: enough for every model to be well above chance in a few minutes.
epochs_of() { case "$1" in eight) echo 4 ;; yolo_vgg) echo 5 ;; *) echo 6 ;; esac; }

train() {  # train WORKLOAD
  local w="$1" t0
  [ -f "$out/$w/trained/$w.trained.yaml" ] && return 0
  [ "$w" = street ] && [ -f "$out/$w/trained/street_cameras.trained.yaml" ] && return 0
  write_config "$w"
  t0=$(date +%s)
  "$gemel" train --config "$out/$w/$w.yaml" --out "$out/$w/trained" --epochs "$(epochs_of "$w")" \
    --threads 1 > "$out/$w/train.log" 2>&1 || { tail -5 "$out/$w/train.log"; return 1; }
  if [ "$w" = street ]; then
    cp "$out/$w/trained/street_cameras.trained.yaml" "$out/$w/trained/$w.trained.yaml"
  fi
  echo "trained $w in $(($(date +%s) - t0)) s"
}

merge() {  # merge RUN (a workload, or street@LR)
  local run="$1" w="${1%@*}" lr dir t0
  dir="$out/runs/$run"
  [ -f "$dir/eval.json" ] && return 0
  mkdir -p "$dir" "$out/$w"
  flock "$out/$w/.train.lock" "$0" --train "$out" "$w" || return 1
  cp "$out/$w/trained/$w.trained.yaml" "$dir/workload.yaml"
  if [ "$run" != "$w" ]; then  # street@LR: the same baselines, search.lr set or removed
    lr="${run#*@}"
    if [ "$lr" = absent ]; then
      sed -i '/^  lr: /d' "$dir/workload.yaml"
    else
      sed -i "s/^  lr: .*/  lr: $lr/" "$dir/workload.yaml"
    fi
  fi
  t0=$(date +%s)
  "$gemel" merge --config "$dir/workload.yaml" --out "$dir" --threads 1 --time-budget "$budget" \
    > "$dir/merge.log" 2>&1 || { tail -5 "$dir/merge.log"; return 1; }
  "$gemel" eval --results "$dir/results.h5" --json --threads 1 > "$dir/eval.json.tmp" \
    2> "$dir/eval.log" || true
  mv "$dir/eval.json.tmp" "$dir/eval.json"
  echo "merged $run in $(($(date +%s) - t0)) s"
}

# Runs "$1 ITEM" for every further argument, $jobs at a time; fails if any did.
parallel() {
  local fn="$1" failed=0 item
  shift
  for item in "$@"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || failed=1; done
    "$fn" "$item" &
  done
  while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
  return $failed
}

if [ -n "$train_only" ]; then
  train "$train_only"
  exit
fi
build_data
parallel merge "${runs[@]}" || echo "(a merge failed; see its merge.log)"
dirs=()
for run in "${runs[@]}"; do dirs+=("$out/runs/$run"); done
"$python" "$root/tests/bench/search_suite_report.py" "${dirs[@]}"
