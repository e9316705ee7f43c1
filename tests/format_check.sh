#!/bin/bash
# The C++ files must be as .clang-format lays them out (clang-format-14):
#   tests/format_check.sh [BASE]
# BASE (or GEMEL_FORMAT_BASE): check only the files changed since that commit. Without one, every
# tracked C++ file is checked (about 5 s): checking only the last commit let earlier commits'
# layout slip through whenever the next commit did not touch them.
# Prints each file that differs and how to fix it; exits 1 if any does.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
base="${1:-${GEMEL_FORMAT_BASE:-}}"
format=$(command -v clang-format-14 || command -v clang-format || true)
if [ -z "$format" ]; then
  echo "format check: clang-format-14 is missing (apt-get install clang-format-14)" >&2
  exit 2
fi
if [ -z "$base" ]; then
  base=$(git hash-object -t tree /dev/null)
elif ! git rev-parse --verify -q "$base^{commit}" >/dev/null 2>&1; then
  echo "format check: no commit '$base' to compare with (a shallow clone?); checking every file"
  base=$(git hash-object -t tree /dev/null)
fi
mapfile -t files < <(git diff --name-only --diff-filter=ACMR "$base" -- '*.cpp' '*.h' '*.cu')
bad=0
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  if ! "$format" --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "format check: $f is not clang-formatted: run $format -i $f"
    bad=1
  fi
done
echo "format check: ${#files[@]} C++ files, $([ $bad = 0 ] && echo "all formatted" || echo "some not formatted")"
exit $bad
