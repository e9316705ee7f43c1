#!/bin/bash
# The C++ files a change touches must be as .clang-format lays them out (clang-format-14):
#   tests/format_check.sh [BASE]
# BASE: the commit the change starts from (default: GEMEL_FORMAT_BASE, else the parent of HEAD).
# Prints each file that differs and how to fix it; exits 1 if any does.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
base="${1:-${GEMEL_FORMAT_BASE:-HEAD~1}}"
format=$(command -v clang-format-14 || command -v clang-format || true)
if [ -z "$format" ]; then
  echo "format check: clang-format-14 is missing (apt-get install clang-format-14)" >&2
  exit 2
fi
if ! git rev-parse --verify -q "$base^{commit}" >/dev/null 2>&1; then
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
echo "format check: ${#files[@]} changed C++ files since $(git rev-parse --short "$base" 2>/dev/null || echo "$base"), $([ $bad = 0 ] && echo "all formatted" || echo "some not formatted")"
exit $bad
