#!/bin/bash
# Distributed benchmarks on one CPU machine; prints figures (no pass/fail).
#  1. Weak scaling of joint training steps: 1 rank training 2 tasks vs 2 ranks training 4 tasks
#     (2 per rank), one thread per rank, the same fixed number of steps; steps/s and efficiency.
#  2. GradSync's effective bandwidth against raw MPI_Allreduce of the same bytes (bench-sync).
# Usage: tests/bench/dist_bench.sh [steps]   (after a build; uses build/)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${GEMEL_BUILD_DIR:-$root/build}"
gemel="$build/src/gemel" data="$build/data_tools/gemel-data"
steps="${1:-30}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
classes=("0,2,6" "5,7,9" "1,3,4" "8,0,1")
for i in 0 1 2 3; do
  "$data" fashion-mnist --out "$work/cam${i}_CL.h5" --classes "${classes[$i]}" --size 32 \
    --max-train 1024 --max-val 64 2>/dev/null
done
workload() {  # workload FILE N: the first N cameras, resnet18 each
  { echo "name: weak$2"
    echo "defaults: {batch_size: 32, accuracy_target: 0.1}"
    echo "search: {strategy: greedy, max_trials: 1}"
    echo "tasks:"
    for ((i = 0; i < $2; i++)); do echo "  - {name: cam${i}_resnet18, arch: resnet18, num_classes: 3}"; done
  } > "$1"
}
workload "$work/w2.yaml" 2
workload "$work/w4.yaml" 4
rate() {  # rate NP CONFIG -> "steps seconds"
  OMP_NUM_THREADS=1 timeout 900 mpirun -np "$1" --oversubscribe --allow-run-as-root --bind-to none \
    --mca btl_vader_single_copy_mechanism none "$gemel" merge --config "$2" --out "$work/out$1" \
    --fixed-steps "$steps" 2>&1 | sed -n 's/.*trial 1 .*: \([0-9]*\) steps in \([0-9.]*\) s$/\1 \2/p' | tail -1
}
read -r s1 t1 <<<"$(rate 1 "$work/w2.yaml")"
read -r s2 t2 <<<"$(rate 2 "$work/w4.yaml")"
echo "weak scaling, joint training steps (resnet18, 32x32, batch 32 per task, 1 thread per rank):"
awk -v s1="$s1" -v t1="$t1" -v s2="$s2" -v t2="$t2" 'BEGIN {
  r1 = s1 / t1; r2 = s2 / t2;
  printf "  1 rank,  2 tasks: %d steps in %.1f s = %.2f steps/s (%.0f images/s)\n", s1, t1, r1, r1 * 64;
  printf "  2 ranks, 4 tasks: %d steps in %.1f s = %.2f steps/s (%.0f images/s)\n", s2, t2, r2, r2 * 128;
  printf "  weak-scaling efficiency: %.0f%%\n", 100 * r2 / r1 }'
echo
echo "GradSync vs raw MPI_Allreduce (2 ranks):"
OMP_NUM_THREADS=1 mpirun -np 2 --oversubscribe --allow-run-as-root --bind-to none \
  --mca btl_vader_single_copy_mechanism none "$gemel" bench-sync --repeat 20 | sed 's/^/  /'
