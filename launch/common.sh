#!/bin/bash
# Shared by launch/quickstart.sh and tests/run.sh: install what is missing (Debian 12), then
# configure and build. Source it; it defines gemel_install_deps and gemel_build.

GEMEL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GEMEL_BUILD_DIR="${GEMEL_BUILD_DIR:-$GEMEL_ROOT/build}"

# Debian packages the build, the tests and the parity reference (torchvision) need.
GEMEL_PACKAGES=(
  cmake ninja-build g++ ccache
  libtorch-dev libspdlog-dev libyaml-cpp-dev libboost-program-options-dev libhdf5-dev zlib1g-dev
  libgtest-dev libgmock-dev
  libopenmpi-dev openmpi-bin
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev libopencv-videoio-dev
  python3-torch python3-torchvision python3-h5py
  dataset-fashion-mnist opencv-doc
)

gemel_install_deps() {
  local missing=()
  for p in "${GEMEL_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "[setup] all ${#GEMEL_PACKAGES[@]} packages present"
    return 0
  fi
  echo "[setup] installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# gemel_build [targets...]: configure (once) and build; all targets when none are named.
gemel_build() {
  # ccache must accept the precompiled torch header (see cmake/GemelCcache.cmake).
  export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
  if [ ! -f "$GEMEL_BUILD_DIR/build.ninja" ]; then
    cmake -S "$GEMEL_ROOT" -B "$GEMEL_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
  fi
  local jobs
  jobs="$(nproc)"
  local targets=()
  for t in "$@"; do targets+=(--target "$t"); done
  cmake --build "$GEMEL_BUILD_DIR" -j"$jobs" "${targets[@]}"
}
