#!/bin/bash
# tests/fuzz/run.sh SECONDS [HARNESS...]: builds the libFuzzer harnesses (clang, ASan+UBSan, in
# build-fuzz/) and fuzzes each for SECONDS, starting from its seed corpus (corpus/<name>/,
# which is not modified: new inputs go to build-fuzz/corpus/<name>/). Prints each harness's
# executions per second and the coverage it reached; exits non-zero when one found a crash,
# whose input is left in build-fuzz/findings/<name>/ (add it to corpus/<name>/ once fixed).
# SECONDS=0 replays the seed corpora once, as CI does (ctest -L fuzz).
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
  mkdir -p "$work" "$findings"
  log="$GEMEL_FUZZ_BUILD_DIR/fuzz_$h.log"
  rc=0
  if [ "$seconds" -eq 0 ]; then
    "$GEMEL_FUZZ_BUILD_DIR/tests/fuzz/fuzz_$h" -runs=0 "$root/tests/fuzz/corpus/$h" >"$log" 2>&1 || rc=$?
  else
    "$GEMEL_FUZZ_BUILD_DIR/tests/fuzz/fuzz_$h" -max_total_time="$seconds" -timeout=30 \
      -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 -artifact_prefix="$findings/" \
      "$work" "$root/tests/fuzz/corpus/$h" >"$log" 2>&1 || rc=$?
  fi
  # libFuzzer's last status line: "#N DONE cov: C ft: F corp: ... exec/s: E ..."
  last=$(grep -E '^#[0-9]+ +(DONE|INITED|pulse|NEW|REDUCE)' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  [ -n "$rate" ] || rate=$(sed -n 's/.* exec\/s: \([0-9]*\).*/\1/p' <<<"$last")
  if [ "$rc" -eq 0 ]; then result=ok; else result="FOUND (rc $rc): $log"; failed=1; fi
  printf '%-16s %10s %12s %8s %8s %s\n' "$h" "$seconds" "${rate:--}" "${cov:--}" "${ft:--}" "$result"
done
exit $failed
