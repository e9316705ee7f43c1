# LibTorch, the CUDA build. Where it comes from, first match wins:
#   1. Torch_DIR or CMAKE_PREFIX_PATH given by the user (a libtorch zip, a cluster module);
#   2. the torch package of GEMEL_PYTHON (torch.utils.cmake_prefix_path). GEMEL_PYTHON defaults
#      to the project's .venv, which launch/common.sh fills with the pinned torch wheel.
# GEMEL_PYTHON is also the reference the parity tests run (its torch and torchvision).
#
# Sets GEMEL_TORCH_CUDA (LibTorch has CUDA), GEMEL_TORCH_CUDA_VERSION (the CUDA LibTorch was
# built for, "13.0"), GEMEL_CUDA_VERSION (the toolkit found), GEMEL_TORCH_FLAGS.
set(_gemel_venv_python "${PROJECT_SOURCE_DIR}/.venv/bin/python")
if(EXISTS "${_gemel_venv_python}")
  set(_gemel_default_python "${_gemel_venv_python}")
else()
  set(_gemel_default_python "")
endif()
set(GEMEL_PYTHON "${_gemel_default_python}" CACHE FILEPATH
    "Python with torch and torchvision: LibTorch is found through it unless Torch_DIR or CMAKE_PREFIX_PATH name one, and the parity tests compare against it")

if(GEMEL_PYTHON)
  execute_process(
    COMMAND "${GEMEL_PYTHON}" -c "import torch; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _gemel_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
    ERROR_VARIABLE _gemel_torch_err RESULT_VARIABLE _gemel_torch_rc)
  if(_gemel_torch_rc EQUAL 0)
    list(APPEND CMAKE_PREFIX_PATH "${_gemel_torch_prefix}")
  else()
    message(WARNING "gemel: GEMEL_PYTHON=${GEMEL_PYTHON} cannot import torch (${_gemel_torch_err}); "
                    "run launch/quickstart.sh (it installs the pinned torch into .venv) or set "
                    "Torch_DIR to your LibTorch's share/cmake/Torch")
  endif()
endif()

# The torch CMake config needs the CUDA toolkit (nvcc on PATH, /usr/local/cuda or
# CUDAToolkit_ROOT) to set up its CUDA targets. The architecture list quiets its GPU probe.
if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
endif()

find_package(Torch REQUIRED)

# Torch's CMake config sets flags globally in TORCH_CXX_FLAGS; we apply them per target.
separate_arguments(GEMEL_TORCH_FLAGS UNIX_COMMAND "${TORCH_CXX_FLAGS}")

set(GEMEL_TORCH_CUDA OFF)
if(TARGET torch_cuda)
  set(GEMEL_TORCH_CUDA ON)
  # gemel's own kernels (src/ops): for the data-centre GPUs it is run on (A100, H100), with
  # PTX for newer ones. Set on their target: torch's config enables CUDA itself and turns
  # CMAKE_CUDA_ARCHITECTURES off (with its warning about it).
  set(GEMEL_CUDA_ARCHITECTURES "80-real;90" CACHE STRING
      "CUDA architectures of gemel's kernels (CMake's CUDA_ARCHITECTURES form)")
  if(NOT CMAKE_CUDA_COMPILER AND CUDAToolkit_NVCC_EXECUTABLE)
    set(CMAKE_CUDA_COMPILER "${CUDAToolkit_NVCC_EXECUTABLE}")
  endif()
  enable_language(CUDA)
  if(GEMEL_CCACHE_PROGRAM AND NOT CMAKE_CUDA_COMPILER_LAUNCHER)
    set(CMAKE_CUDA_COMPILER_LAUNCHER "${GEMEL_CCACHE_PROGRAM}")
  endif()
  set(CMAKE_CUDA_STANDARD 17)
endif()

# The CUDA version LibTorch was built for: a libtorch zip says it in build-version
# ("2.11.0+cu130"), the pip wheel in torch/version.py (cuda = '13.0').
set(GEMEL_TORCH_CUDA_VERSION "")
if(EXISTS "${TORCH_INSTALL_PREFIX}/build-version")
  file(READ "${TORCH_INSTALL_PREFIX}/build-version" _gemel_bv)
  if(_gemel_bv MATCHES "\\+cu([0-9]+)([0-9])")
    set(GEMEL_TORCH_CUDA_VERSION "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}")
  endif()
elseif(EXISTS "${TORCH_INSTALL_PREFIX}/version.py")
  file(STRINGS "${TORCH_INSTALL_PREFIX}/version.py" _gemel_cuda_line REGEX "^cuda")
  if(_gemel_cuda_line MATCHES "'([0-9]+\\.[0-9]+)'")
    set(GEMEL_TORCH_CUDA_VERSION "${CMAKE_MATCH_1}")
  endif()
endif()

set(GEMEL_CUDA_VERSION "")
if(GEMEL_TORCH_CUDA)
  # The toolkit torch's config found (FindCUDAToolkit's full version, else its own short one).
  string(REGEX REPLACE "^$" "${CUDA_VERSION}" GEMEL_CUDA_VERSION "${CUDAToolkit_VERSION}")
  if(GEMEL_TORCH_CUDA_VERSION AND GEMEL_CUDA_VERSION)
    string(REGEX MATCH "^[0-9]+" _gemel_tk_major "${GEMEL_CUDA_VERSION}")
    string(REGEX MATCH "^[0-9]+" _gemel_torch_major "${GEMEL_TORCH_CUDA_VERSION}")
    if(NOT _gemel_tk_major STREQUAL _gemel_torch_major)
      message(WARNING
        "gemel: the CUDA toolkit is ${GEMEL_CUDA_VERSION} but LibTorch was built for CUDA "
        "${GEMEL_TORCH_CUDA_VERSION}. gemel links LibTorch's own CUDA libraries (they come with "
        "it) and takes only headers from the toolkit; NCCL must match LibTorch's CUDA "
        "${_gemel_torch_major}. Load a CUDA ${_gemel_torch_major}.x module or set CUDAToolkit_ROOT "
        "to avoid surprises.")
    endif()
  endif()
endif()

# gemel::torch: LibTorch with its compile flags, for our targets.
# The pip wheel's libtorch.so and libtorch_cpu.so export their own copy of std::filesystem
# (built with a newer libstdc++ and linked in statically); when they come before libstdc++ in
# the load order, our std::filesystem calls bind to that copy and jump to address 0. Naming
# libstdc++ ahead of LibTorch puts it first in the lookup scope.
add_library(gemel_torch INTERFACE)
add_library(gemel::torch ALIAS gemel_torch)
target_link_libraries(gemel_torch INTERFACE stdc++ ${TORCH_LIBRARIES})
target_compile_options(gemel_torch INTERFACE ${GEMEL_TORCH_FLAGS})
