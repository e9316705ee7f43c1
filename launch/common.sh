#!/bin/bash
# Shared by launch/quickstart.sh and tests/run.sh: install what is missing (Debian 12 packages,
# and LibTorch from the pinned PyPI torch wheel into .venv), then configure and build. Source
# it; it defines gemel_install_deps and gemel_build.

GEMEL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GEMEL_BUILD_DIR="${GEMEL_BUILD_DIR:-$GEMEL_ROOT/build}"
GEMEL_VENV="${GEMEL_VENV:-$GEMEL_ROOT/.venv}"
GEMEL_REQUIREMENTS="$GEMEL_ROOT/launch/requirements.txt"
# References installed without their declared dependencies (see the file for why).
GEMEL_REQUIREMENTS_NODEPS="$GEMEL_ROOT/launch/requirements-nodeps.txt"

# Debian packages the build and the tests need. LibTorch is not among them: it comes from the
# torch wheel (launch/requirements.txt). The CUDA toolkit (nvcc, headers) is expected at
# /usr/local/cuda or on PATH; without it LibTorch's CMake config cannot set up its CUDA targets.
GEMEL_PACKAGES=(
  cmake ninja-build g++ ccache
  libspdlog-dev libyaml-cpp-dev libboost-program-options-dev libhdf5-dev zlib1g-dev
  libgtest-dev libgmock-dev
  libopenmpi-dev openmpi-bin
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev libopencv-videoio-dev
  python3 python3-venv
  dataset-fashion-mnist opencv-doc
)
# Only the tests need these: headless Chromium renders `gemel report`'s page to a screenshot;
# clang with its runtimes builds the sanitizer and libFuzzer build (build-fuzz/); Slurm and
# munge make the one-node cluster the slurm-labelled test submits the sbatch scripts to.
GEMEL_TEST_PACKAGES=(chromium clang-14 libclang-rt-14-dev clang-format-14
                     slurmctld slurmd slurm-client munge)
GEMEL_FUZZ_BUILD_DIR="${GEMEL_FUZZ_BUILD_DIR:-$GEMEL_ROOT/build-fuzz}"

# The cores this process may run on. GNU nproc returns OMP_NUM_THREADS when it is set (and
# caps at OMP_THREAD_LIMIT): tests/run.sh sets OMP_NUM_THREADS=1 for each test, and a bare
# nproc then gave ctest -j1, running the suite one test at a time.
gemel_cores() { env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc; }

# gemel_install_packages [extra packages...]
gemel_install_packages() {
  local missing=() wanted=("${GEMEL_PACKAGES[@]}" "$@")
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "[setup] all ${#wanted[@]} Debian packages present"
    return 0
  fi
  echo "[setup] installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The venv holds exactly the two requirement files; a stamp of both says it is up to date.
gemel_install_python() {
  local stamp="$GEMEL_VENV/.gemel-requirements"
  if [ -x "$GEMEL_VENV/bin/python" ] &&
     cmp -s <(cat "$GEMEL_REQUIREMENTS" "$GEMEL_REQUIREMENTS_NODEPS") "$stamp"; then
    echo "[setup] $GEMEL_VENV has the pinned torch ($(grep '^torch==' "$GEMEL_REQUIREMENTS"))"
    return 0
  fi
  local python="${GEMEL_BASE_PYTHON:-python3}"
  if [ ! -x "$GEMEL_VENV/bin/python" ]; then
    echo "[setup] creating $GEMEL_VENV with $($python --version 2>&1)"
    "$python" -m venv "$GEMEL_VENV"
  fi
  echo "[setup] installing launch/requirements.txt into $GEMEL_VENV (LibTorch with CUDA: a few GB)"
  "$GEMEL_VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$GEMEL_REQUIREMENTS"
  "$GEMEL_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
    -r "$GEMEL_REQUIREMENTS_NODEPS"
  cat "$GEMEL_REQUIREMENTS" "$GEMEL_REQUIREMENTS_NODEPS" > "$stamp"
}

# gemel_install_deps [extra Debian packages...]
gemel_install_deps() {
  local start
  start=$(date +%s)
  gemel_install_packages "$@"
  gemel_install_python
  echo "[setup] install took $(( $(date +%s) - start )) s"
}

# gemel_build [targets...]: configure (once) and build; all targets when none are named.
gemel_build() {
  # ccache must accept the precompiled torch header (see cmake/GemelCcache.cmake).
  export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
  local start
  start=$(date +%s)
  if [ ! -f "$GEMEL_BUILD_DIR/build.ninja" ]; then
    cmake -S "$GEMEL_ROOT" -B "$GEMEL_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DGEMEL_PYTHON="$GEMEL_VENV/bin/python"
  fi
  local targets=()
  for t in "$@"; do targets+=(--target "$t"); done
  cmake --build "$GEMEL_BUILD_DIR" -j"$(gemel_cores)" "${targets[@]}"
  echo "[build] took $(( $(date +%s) - start )) s"
}

# gemel_fuzz_build [targets...]: the clang build with AddressSanitizer, UndefinedBehaviorSanitizer
# and libFuzzer's instrumentation (build-fuzz/): the fuzz harnesses and the torch-free unit
# tests. It compiles only what those need (no LibTorch model code).
gemel_fuzz_build() {
  export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
  local start targets=()
  start=$(date +%s)
  if [ ! -f "$GEMEL_FUZZ_BUILD_DIR/build.ninja" ]; then
    CC=clang-14 CXX=clang++-14 cmake -S "$GEMEL_ROOT" -B "$GEMEL_FUZZ_BUILD_DIR" -G Ninja \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGEMEL_FUZZ=ON -DGEMEL_USE_PCH=OFF \
      -DGEMEL_PYTHON="$GEMEL_VENV/bin/python"
  fi
  if [ $# -eq 0 ]; then
    set -- gemel_unit_tests fuzz_workload fuzz_darknet_cfg fuzz_dataset fuzz_profile \
      fuzz_state_dict fuzz_results fuzz_darknet_weights
  fi
  for t in "$@"; do targets+=(--target "$t"); done
  cmake --build "$GEMEL_FUZZ_BUILD_DIR" -j"$(gemel_cores)" "${targets[@]}"
  echo "[build-fuzz] took $(( $(date +%s) - start )) s"
}
