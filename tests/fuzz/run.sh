#!/bin/bash
# tests/fuzz/run.sh SECONDS [HARNESS...]: builds the libFuzzer harnesses (clang, ASan+UBSan, in
# build-fuzz/) and fuzzes each for SECONDS, starting from its seed corpus (corpus/<name>/,
# which is not modified: new inputs go to build-fuzz/corpus/<name>/). Prints each harness's
# executions per second and the coverage it reached; exits non-zero when one found a crash,
# whose input is left in build-fuzz/findings/<name>/ (emptied at the start of each run; add it
# to corpus/<name>/ once fixed).
# SECONDS=0 replays the seed corpora once, as CI does (ctest -L fuzz). Every crash, hang or
# sanitizer report is a finding, also one inside libhdf5 (Debian 12's HDF5 1.10.8 does not check
# its global heap: gemel reads string attributes without it, and the result says where a crash
# came from).
set -euo pipefail
seconds="${1:?usage: tests/fuzz/run.sh SECONDS [HARNESS...]}"
shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$root/launch/common.sh"
gemel_fuzz_build
all=(workload darknet_cfg dataset profile state_dict results darknet_weights)
harnesses=("${@:-${all[@]}}")
export ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
failed=0
printf '%-16s %10s %12s %8s %8s %s\n' harness seconds execs/s cov ft result
for h in "${harnesses[@]}"; do
  work="$GEMEL_FUZZ_BUILD_DIR/corpus/$h" findings="$GEMEL_FUZZ_BUILD_DIR/findings/$h"
  # findings/<name>/ holds this run's crash inputs only.
  rm -rf "$findings"
  mkdir -p "$work" "$findings"
  log="$GEMEL_FUZZ_BUILD_DIR/fuzz_$h.log"
  rc=0
  fuzzer="$GEMEL_FUZZ_BUILD_DIR/tests/fuzz/fuzz_$h"
  if [ "$seconds" -eq 0 ]; then
    "$fuzzer" -runs=0 "$root/tests/fuzz/corpus/$h" >"$log" 2>&1 || rc=$?
  else
    # Fork mode goes on after a crash, so that one libhdf5 defect does not end the run; every
    # crash input is kept and classified below.
    "$fuzzer" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
      -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -max_len=262144 \
      -print_final_stats=1 -artifact_prefix="$findings/" \
      "$work" "$root/tests/fuzz/corpus/$h" >"$log" 2>&1 || rc=$?
  fi
  # libFuzzer's last status line: "#N DONE cov: C ft: F ... exec/s: E" (fork mode: "#N: cov: C
  # ft: F corp: K exec/s E ... time: Ts"; its rate is then executions over time).
  last=$(grep -E '^#[0-9]+:?[[:space:]]+(DONE|INITED|pulse|NEW|REDUCE|cov:)' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ -z "$rate" ] && [[ "$last" =~ ^#([0-9]+):.*time:\ ([0-9]+)s ]]; then
    rate=$(( BASH_REMATCH[1] / (BASH_REMATCH[2] > 0 ? BASH_REMATCH[2] : 1) ))
  fi
  [ -n "$rate" ] || rate=$(sed -n 's/.* exec\/s: \([0-9]*\).*/\1/p' <<<"$last")
  # Each crash input, replayed, and counted by where its report starts: in libhdf5 or in gemel.
  ours=0 hdf5=0
  for crash in "$findings"/crash-* "$findings"/leak-* "$findings"/timeout-* "$findings"/oom-*; do
    [ -e "$crash" ] || continue
    report=$(timeout 120 "$fuzzer" -runs=1 -timeout=30 "$crash" 2>&1 || true)
    top=$(grep -E '^ +#[0-9]+ ' <<<"$report" | grep -E 'libhdf5|in gemel::|/src/[a-z_/]+\.cpp|/tests/fuzz/[a-z_]+\.(cpp|h)' | head -1 || true)
    if grep -q 'libhdf5' <<<"$top"; then hdf5=$(( hdf5 + 1 )); else ours=$(( ours + 1 )); fi
  done
  if [ "$seconds" -eq 0 ] && [ "$rc" -ne 0 ]; then ours=$(( ours + 1 )); fi
  result="ok"
  if [ $(( ours + hdf5 )) -ne 0 ]; then
    result="FOUND $(( ours + hdf5 )) ($hdf5 in libhdf5): $findings, $log"
    failed=1
  fi
  printf '%-16s %10s %12s %8s %8s %s\n' "$h" "$seconds" "${rate:--}" "${cov:--}" "${ft:--}" "$result"
done
exit $failed
