#!/bin/bash
# From a fresh Debian 12 machine: install what is missing, build everything, run every test.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../launch/common.sh"

gemel_install_deps
gemel_build
cd "$GEMEL_BUILD_DIR"
ctest -j"$(nproc)" --output-on-failure --timeout 900 "$@"
