#!/bin/bash
# Kill-anywhere soak: tests/soak/kill_resume.sh N [OUT_DIR]
#
# Kills `gemel merge` with SIGKILL at N random moments, half of them a single process and half
# one rank of an `mpirun -np 2` job, and resumes it with --resume after each kill. With
# --fixed-steps the search is deterministic, so each resumed run must end exactly where an
# uninterrupted run of the same kind ends: the same trials and decisions, the same weights.
# After every kill:
#   - results.h5 (if the run got as far as writing one) opens with h5py and holds a complete
#     record;
#   - no confirmed trial is lost: every trial recorded before the kill is still there, with the
#     same decision, and agrees with the uninterrupted run.
# Prints the kills done, resumes, and trials lost (which must be 0); exits non-zero otherwise.
# Needs a built tree (tests/run.sh or launch/quickstart.sh builds one). Seed with SOAK_SEED.
set -euo pipefail
kills_wanted="${1:?usage: tests/soak/kill_resume.sh N [OUT_DIR]}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${GEMEL_BUILD_DIR:-$root/build}"
gemel="$build/src/gemel"
gemel_data="$build/data_tools/gemel-data"
python="${GEMEL_PYTHON:-$root/.venv/bin/python}"
work="${2:-$(mktemp -d /tmp/gemel-soak.XXXXXX)}"
steps="--fixed-steps 8"
RANDOM=${SOAK_SEED:-$$}
mkdir -p "$work"
for f in "$gemel" "$gemel_data" "$python"; do
  [ -x "$f" ] || { echo "kill_resume: $f is missing: build first (tests/run.sh)" >&2; exit 2; }
done
mpirun_np2=(mpirun -np 2 --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none)
[ "$(id -u)" -eq 0 ] && mpirun_np2+=(--allow-run-as-root)

echo "== soak in $work: $kills_wanted kills"
# Three small cameras from Debian's Fashion-MNIST, trained once.
if [ ! -f "$work/trained/soak.trained.yaml" ]; then
  for cam in "shoes:5,7,9" "bags:8,1,3" "tops:0,2,6"; do
    "$gemel_data" fashion-mnist --out "$work/${cam%%:*}_CL.h5" --classes "${cam#*:}" --size 16 \
      --max-train 256 --max-val 96 --log-level warn
  done
  cat > "$work/soak.yaml" <<'EOF'
name: soak
defaults: {batch_size: 32, accuracy_target: 0.1}
search: {strategy: greedy, epochs_per_trial: 1, lr: 0.05, max_trials: 4}
tasks:
  - {name: shoes_resnet18, arch: resnet18, num_classes: 3}
  - {name: bags_resnet18, arch: resnet18, num_classes: 3}
  - {name: tops_resnet18, arch: resnet18, num_classes: 3}
EOF
  "$gemel" train --config "$work/soak.yaml" --epochs 1 --out "$work/trained" --log-level warn >/dev/null
fi
config="$work/trained/soak.trained.yaml"

# The record of a results file: one line per trial (number, label, decision, met), or
# "unreadable: ..." when h5py cannot open it as a complete record.
record() {
  "$python" - "$1" <<'EOF'
import sys, h5py
try:
    with h5py.File(sys.argv[1], "r") as f:
        assert f.attrs["format"] == "gemel-results"
        for g in ("tasks", "shared", "search/trials", "memory"):
            assert g in f, g
        for n in sorted(f["search/trials"]):
            a = f["search/trials"][n].attrs
            print(n, a["label"], a["decision"], list(a["met"]))
except Exception as e:
    print("unreadable:", type(e).__name__, e)
EOF
}

# Same trials, decisions and weights (largest relative difference 0 up to float noise).
same_results() { "$python" "$root/tests/support/same_results.py" "$1" "$2"; }

kills=0 resumes=0 lost=0 unreadable=0 mismatched=0
for mode in single mpi; do
  if [ "$mode" = single ]; then launcher=(); want=$(( kills_wanted / 2 )); else
    launcher=("${mpirun_np2[@]}"); want=$(( kills_wanted - kills_wanted / 2 )); fi
  [ "$want" -gt 0 ] || continue
  ref="$work/ref-$mode"
  rm -rf "$ref"
  t0=$(date +%s%N)
  "${launcher[@]}" "$gemel" merge --config "$config" --out "$ref" $steps --log-level warn >"$ref.log" 2>&1
  ref_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  record "$ref/results.h5" > "$ref.trials"
  echo "-- $mode: uninterrupted run $(( ref_ms / 1000 )) s, $(wc -l < "$ref.trials") trials"
  done_here=0 round=0
  while [ "$done_here" -lt "$want" ]; do
    round=$(( round + 1 ))
    out="$work/soak-$mode-$round"
    rm -rf "$out"
    before=""
    while true; do
      args=(merge --config "$config" --out "$out" $steps --log-level warn)
      if [ -f "$out/results.h5" ]; then args+=(--resume); resumes=$(( resumes + 1 )); fi
      "${launcher[@]}" "$gemel" "${args[@]}" >>"$out.log" 2>&1 &
      job=$!
      if [ "$done_here" -ge "$want" ]; then
        wait "$job" || { echo "the final resumed run failed: $out.log" >&2; exit 1; }
        break
      fi
      # A moment within the run: 5% to 95% of an uninterrupted run's time.
      delay_ms=$(( ref_ms * (5 + RANDOM % 91) / 100 ))
      sleep "$(printf '%d.%03d' $(( delay_ms / 1000 )) $(( delay_ms % 1000 )))"
      if [ "$mode" = single ]; then victim=$job; else
        # One rank: a gemel process whose parent is this mpirun.
        victims=($(pgrep -P "$job" -f "src/gemel merge" || true))
        victim="${victims[$(( RANDOM % (${#victims[@]} > 0 ? ${#victims[@]} : 1) ))]:-}"
      fi
      if [ -n "$victim" ] && kill -KILL "$victim" 2>/dev/null; then
        wait "$job" 2>/dev/null || true
        kills=$(( kills + 1 )) done_here=$(( done_here + 1 ))
      else
        # The run ended before the kill: it is done; check it and start another round.
        wait "$job" || { echo "a resumed run failed: $out.log" >&2; exit 1; }
        break
      fi
      # Whatever the kill interrupted, the results file is a complete record, and every
      # trial it held before is still there, as the uninterrupted run recorded it.
      if [ -f "$out/results.h5" ]; then
        now=$(record "$out/results.h5")
        if [[ "$now" == unreadable* ]]; then
          echo "kill $kills: $out/results.h5 $now"; unreadable=$(( unreadable + 1 ))
        fi
        had=$(printf '%s\n' "$before" | grep -c . || true)
        kept=$(comm -12 <(printf '%s\n' "$before" | sort) <(printf '%s\n' "$now" | sort) | grep -c . || true)
        lost=$(( lost + had - kept ))
        if [ -n "$now" ] && [[ "$now" != unreadable* ]] &&
           ! diff -q <(printf '%s\n' "$now") <(head -n "$(printf '%s\n' "$now" | wc -l)" "$ref.trials") >/dev/null; then
          echo "kill $kills: recorded trials differ from the uninterrupted run"; mismatched=$(( mismatched + 1 ))
        fi
        before="$now"
      fi
      echo "kill $kills ($mode, round $round, after $(( delay_ms / 100 ))00 ms): $(printf '%s\n' "$before" | grep -c . || true) trials recorded"
    done
    if same_results "$ref/results.h5" "$out/results.h5" > "$out.same" 2>&1; then
      echo "-- $mode round $round: ends as the uninterrupted run: $(cat "$out.same")"
    else
      echo "-- $mode round $round: differs from the uninterrupted run: $(tail -1 "$out.same")"
      mismatched=$(( mismatched + 1 ))
    fi
  done
done
echo "kills done: $kills, resumes: $resumes, trials lost: $lost, unreadable results: $unreadable, mismatches: $mismatched"
[ "$lost" -eq 0 ] && [ "$unreadable" -eq 0 ] && [ "$mismatched" -eq 0 ] && [ "$kills" -eq "$kills_wanted" ]
