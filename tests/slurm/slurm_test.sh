#!/bin/bash
# The sbatch scripts as users submit them, on a real Slurm: a one-node cluster on localhost
# (tests/slurm/cluster.sh: munged, slurmctld, slurmd with 2 CPUs), CPU-only options given at
# submission, nothing in the scripts edited.
#   1. slurm/merge.sbatch on 2 tasks (srun --mpi=pmix): a merge over 2 MPI ranks, then eval;
#   2. slurm/sweep.sbatch as a job array over two small workloads;
#   3. merge.sbatch again, requeued (scontrol requeue) once its first trial is recorded: it must
#      resume and end exactly as job 1 ended (tests/support/same_results.py);
#   4. gemel summary over the sweep's output root.
# ctest runs it under the label `slurm` (exit 77: skipped, Slurm or munge missing).
# Environment: GEMEL_BINARY, GEMEL_DATA_BINARY, GEMEL_PYTHON, GEMEL_SOURCE_DIR; optional
# GEMEL_SLURM_SCREENSHOT (a PNG of the summary page, taken with headless Chromium) and
# GEMEL_SLURM_KEEP=1 (keep the work directory).
set -euo pipefail
src="${GEMEL_SOURCE_DIR:?}"
gemel="${GEMEL_BINARY:?}"
data="${GEMEL_DATA_BINARY:?}"
python="${GEMEL_PYTHON:?}"
for tool in munged slurmctld slurmd sbatch srun scontrol; do
  if ! command -v "$tool" > /dev/null; then
    echo "SKIP: $tool is missing (tests/run.sh installs Debian's slurmctld slurmd slurm-client munge)"
    exit 77
  fi
done

work="$(mktemp -d /tmp/gemel-slurm-XXXXXX)"
cleanup() {
  "$src/tests/slurm/cluster.sh" stop "$work/cluster" || true
  if [ -z "${GEMEL_SLURM_KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.out "$work/cluster/slurmctld.log"; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }
  done
  exit 1
}
say() { echo "[slurm test] $*"; }

eval "$("$src/tests/slurm/cluster.sh" start "$work/cluster" 2)"
say "cluster up: $(sinfo -h -o '%P %D node(s) %c CPUs %T')"
export GEMEL_BINARY="$gemel" OMP_NUM_THREADS=1

# Two small workloads of two ResNet-18 cameras each (16 px Fashion-MNIST subsets), trained.
mkdir -p "$work/data"
make_data() {
  "$data" fashion-mnist --out "$work/data/$1_CL.h5" --classes "$2" --size 16 --max-train 320 \
    --max-val 120 --log-level warn
}
make_data shoes 5,7,9
make_data bags 8,1,3
make_data tops 0,2,3
workload() {  # NAME TASK_A TASK_B
  cat > "$work/$1.yaml" << EOF
name: $1
datasets_dir: data
defaults: {batch_size: 32, accuracy_target: 0.5}
search: {strategy: greedy, epochs_per_trial: 1, lr: 0.05}
tasks:
  - {name: $2_resnet18, arch: resnet18, num_classes: 3, transforms: {mean: [0.3, 0.3, 0.3], std: [0.35, 0.35, 0.35]}}
  - {name: $3_resnet18, arch: resnet18, num_classes: 3, transforms: {mean: [0.3, 0.3, 0.3], std: [0.35, 0.35, 0.35]}}
EOF
  "$gemel" train --config "$work/$1.yaml" --epochs 1 --out "$work" --log-level warn > /dev/null
  [ -f "$work/$1.trained.yaml" ] || fail "gemel train wrote no $work/$1.trained.yaml"
}
workload street shoes bags
workload plaza tops bags
printf '%s\n' "$work/street.trained.yaml" "$work/plaza.trained.yaml" > "$work/list.txt"

# The state of a job (of every task of an array), from scontrol (no accounting database here).
job_states() { scontrol show job "$1" -o 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2 | sort | uniq | tr '\n' ' '; }
wait_job() {  # ID SECONDS: until no task is pending or running
  local s
  for _ in $(seq 1 "$2"); do
    s="$(job_states "$1")"
    case "$s" in *PENDING* | *RUNNING* | *REQUEUE* | *CONFIGURING* | *COMPLETING* | "") sleep 1 ;; *) echo "$s"; return 0 ;; esac
  done
  fail "job $1 still '$(job_states "$1")' after $2 s"
}
trials() { "$python" -c "import h5py,sys; f=h5py.File(sys.argv[1],'r'); print(len(f['search/trials']), f.attrs['status'])" "$1" 2>/dev/null || echo "0 none"; }

cpu_only=(--gpus-per-node=0 --cpus-per-task=1 --time=20)
# Heavy enough steps that the requeue lands inside the search (about 3 s a trial on 2 cores).
merge_args=(--fixed-steps 40 --max-trials 3 --threads 1)

# 1. merge.sbatch on 2 tasks.
id="$(sbatch --parsable "${cpu_only[@]}" --nodes=1 --ntasks-per-node=2 --chdir="$work" \
  --output="$work/merge-%j.out" "$src/slurm/merge.sbatch" "$work/street.trained.yaml" "$work/merge" \
  "${merge_args[@]}")"
say "job $id: slurm/merge.sbatch street, 2 tasks (srun --mpi=pmix)"
state="$(wait_job "$id" 300)"
[ "$state" = "COMPLETED " ] || fail "job $id ended $state"
grep -q "2 ranks" "$work/merge-$id.out" || fail "job $id did not run 2 ranks"
read -r n status <<< "$(trials "$work/merge/results.h5")"
[ "$status" = done ] && [ "$n" = 3 ] || fail "job $id: results.h5 has $n trials, status $status"
say "job $id: $state- 2 ranks, $n trials, results.h5 done, eval ran"

# 2. sweep.sbatch as an array over the two workloads.
id="$(sbatch --parsable "${cpu_only[@]}" --array=1-2 --chdir="$work" \
  --output="$work/sweep-%A_%a.out" "$src/slurm/sweep.sbatch" "$work/list.txt" "$work/sweep" \
  --fixed-steps 4 --max-trials 2)"
say "job $id: slurm/sweep.sbatch, array 1-2 over street and plaza"
state="$(wait_job "$id" 300)"
[ "$state" = "COMPLETED " ] || fail "array $id ended $state"
for w in street.trained plaza.trained; do
  [ -f "$work/sweep/$w/eval.json" ] || fail "array $id: no $work/sweep/$w/eval.json"
done
say "array $id: $state- both workloads merged, each with its eval.json"

# 3. The merge of job 1 again, requeued once its first trial is recorded.
id="$(sbatch --parsable "${cpu_only[@]}" --nodes=1 --ntasks-per-node=2 --chdir="$work" \
  --open-mode=append --output="$work/requeue-%j.out" "$src/slurm/merge.sbatch" \
  "$work/street.trained.yaml" "$work/requeued" "${merge_args[@]}")"
say "job $id: merge.sbatch street again, to be requeued mid-search"
requeued=""
for _ in $(seq 1 600); do
  read -r n status <<< "$(trials "$work/requeued/results.h5")"
  if [ "$n" -ge 1 ] && [ "$status" = running ]; then
    scontrol requeue "$id"
    requeued="after $n trial(s)"
    break
  fi
  [ "$(job_states "$id")" = "COMPLETED " ] && fail "job $id ended before it could be requeued"
  sleep 0.2
done
[ -n "$requeued" ] || fail "job $id never recorded a trial"
say "job $id: requeued $requeued (scontrol requeue)"
state="$(wait_job "$id" 600)"
[ "$state" = "COMPLETED " ] || fail "requeued job $id ended $state"
grep -q "resuming $work/requeued/results.h5" "$work/requeue-$id.out" ||
  fail "job $id did not resume after the requeue"
"$python" "$src/tests/support/same_results.py" "$work/merge/results.h5" \
  "$work/requeued/results.h5" 3 || fail "the requeued merge did not end as the uninterrupted one"
say "job $id: $state- resumed from results.h5 and ended as the uninterrupted job 1 did"

# 4. The sweep's summary.
"$gemel" summary "$work/sweep" --list "$work/list.txt" --require-complete ||
  fail "gemel summary: not every workload of the sweep finished at target"
for w in street.trained plaza.trained; do
  grep -q "^$w,finished," "$work/sweep/summary.csv" || fail "summary.csv has no finished row for $w"
done
if [ -n "${GEMEL_SLURM_SCREENSHOT:-}" ] && command -v chromium > /dev/null; then
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,520 \
    --screenshot="$GEMEL_SLURM_SCREENSHOT" "file://$work/sweep/summary.html" > /dev/null 2>&1
  say "summary page: $GEMEL_SLURM_SCREENSHOT"
fi
say "passed"
