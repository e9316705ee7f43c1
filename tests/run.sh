#!/bin/bash
# From a fresh Debian 12 machine: install what is missing, build everything, run every test.
# Tests that need a CUDA device (ctest label `gpu`) are reported as skipped without one; their
# reasons are printed at the end. Extra arguments go to ctest (e.g. -L gpu, -R Merge).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../launch/common.sh"
start=$(date +%s)

gemel_install_deps "${GEMEL_TEST_PACKAGES[@]}"
rc=0
failed=()  # each step that failed, repeated at the very end where a CI log's tail shows it
# Every C++ file (or those changed since GEMEL_FORMAT_BASE) as .clang-format lays them out.
bash "$GEMEL_ROOT/tests/format_check.sh" || { rc=1; failed+=("format check (tests/format_check.sh)"); }
gemel_build
cd "$GEMEL_BUILD_DIR"
tests_start=$(date +%s)
# One test per core, one intra-op thread per test: LibTorch's default (a thread per core) in
# every test at once oversubscribes the machine, and OpenMP's spinning threads then make the
# heavy tests 10-50x slower. (Tests that care about threads set their own.)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# A fresh build has no timings, and ctest would then start the longest tests last, leaving
# a core idle at the end: start from the measured costs (tests/ctest_costs.txt, ctest's own
# Testing/Temporary/CTestCostData.txt format), which ctest updates after each run.
if [ ! -f Testing/Temporary/CTestCostData.txt ]; then
  mkdir -p Testing/Temporary
  cp "$GEMEL_ROOT/tests/ctest_costs.txt" Testing/Temporary/CTestCostData.txt
fi
ctest -j"$(gemel_cores)" --output-on-failure --timeout 900 "$@" || {
  rc=1
  failed+=("ctest in $GEMEL_BUILD_DIR: $(tr '\n' ' ' < Testing/Temporary/LastTestsFailed.log 2>/dev/null)")
}

# Each skipped test with the reason it gave (GTEST_SKIP's message), from ctest's log.
awk '
  /^[0-9]+\/[0-9]+ Test: / { name = $3; reason = ""; grab = 0 }
  grab && /^\[  SKIPPED \]/ { grab = 0; skipped[name] = reason }
  grab { reason = reason (reason == "" ? "" : " ") $0 }
  /: Skipped$/ { grab = 1 }
  END { for (n in skipped) printf "skipped: %s: %s\n", n, skipped[n] }
' Testing/Temporary/LastTest.log | sort
# The sanitizer build (clang, ASan + UBSan, build-fuzz/): the unit tests again, and every fuzz
# harness over its seed corpus once.
if [ "${GEMEL_SKIP_SANITIZE:-0}" != 1 ]; then
  sanitize_start=$(date +%s)
  gemel_fuzz_build
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$GEMEL_FUZZ_BUILD_DIR" -j"$(gemel_cores)" --output-on-failure -L 'unit|fuzz' || {
    rc=1
    failed+=("sanitizer ctest in $GEMEL_FUZZ_BUILD_DIR: $(tr '\n' ' ' < "$GEMEL_FUZZ_BUILD_DIR/Testing/Temporary/LastTestsFailed.log" 2>/dev/null)")
  }
  echo "sanitizer build and its tests took $(( $(date +%s) - sanitize_start )) s"
fi
end=$(date +%s)
echo "tests took $(( end - tests_start )) s; install, build and tests $(( end - start )) s"
for f in "${failed[@]}"; do echo "FAILED: $f"; done
[ $rc = 0 ] && echo "all passed"
exit $rc
