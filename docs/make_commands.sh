#!/bin/bash
# Writes docs/commands.md from the --help of every command of a built gemel and gemel-data:
#   docs/make_commands.sh [BUILD_DIR]   (default: build)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
gemel="$build/src/gemel"
data="$build/data_tools/gemel-data"
{
  echo "# Command reference"
  echo
  echo "Every command's options, as \`--help\` prints them (written by \`docs/make_commands.sh\`)."
  echo "What the commands do is in [merging.md](merging.md), [edge.md](edge.md),"
  echo "[datasets.md](datasets.md), [distributed.md](distributed.md) and"
  echo "[performance.md](performance.md)."
  echo
  echo "## gemel"
  echo
  echo '```'
  "$gemel" --help
  echo '```'
  for c in inspect train merge eval export profile simulate report bench bench-sync version; do
    echo
    echo "### gemel $c"
    echo
    echo '```'
    "$gemel" "$c" --help
    echo '```'
  done
  echo
  echo "## gemel-data"
  echo
  echo '```'
  "$data" --help
  echo '```'
} > "$root/docs/commands.md"
echo "wrote $root/docs/commands.md"
