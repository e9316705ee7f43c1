#!/bin/bash
# From a fresh Debian 12 machine: install what is missing, build gemel, and run it on the
# bundled example workloads.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
start=$(date +%s)

gemel_install_deps
gemel_build gemel

gemel="$GEMEL_BUILD_DIR/src/gemel"
cd "$GEMEL_ROOT"
for example in configs/examples/mixed.yaml configs/examples/small.yaml; do
  echo
  echo "== gemel inspect --config $example"
  "$gemel" inspect --config "$example" --top 10
done
echo
echo "quickstart finished in $(( $(date +%s) - start )) s"
