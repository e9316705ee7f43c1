# The versions this gemel is built with: one configure summary line, and the generated header
# gemel/build_config.h that `gemel version` reports from. The git commit is stamped at build
# time instead (cmake/GemelCommit.cmake), so that it never goes stale.

# cuDNN: the headers beside LibTorch's pip package first (the cuDNN torch loads), then the
# user's CUDNN_ROOT, then the CUDA toolkit's and the system's.
set(GEMEL_CUDNN_VERSION "")
if(GEMEL_TORCH_CUDA)
  foreach(dir "${TORCH_INSTALL_PREFIX}/../nvidia/cudnn/include" "${CUDNN_ROOT}/include"
              "$ENV{CUDNN_ROOT}/include" ${CUDAToolkit_INCLUDE_DIRS} /usr/include)
    if(EXISTS "${dir}/cudnn_version.h")
      file(STRINGS "${dir}/cudnn_version.h" _v REGEX "^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ")
      string(REGEX REPLACE ".*CUDNN_MAJOR ([0-9]+).*CUDNN_MINOR ([0-9]+).*CUDNN_PATCHLEVEL ([0-9]+).*"
                           "\\1.\\2.\\3" GEMEL_CUDNN_VERSION "${_v}")
      break()
    endif()
  endforeach()
endif()

# The MPI library (not the standard version FindMPI reports).
set(GEMEL_MPI_LIBRARY "MPI ${MPI_C_VERSION}")
foreach(dir ${MPI_C_INCLUDE_DIRS})
  if(EXISTS "${dir}/mpi.h")
    file(STRINGS "${dir}/mpi.h" _v REGEX "^#define (OMPI_(MAJOR|MINOR|RELEASE)_VERSION|MPICH_VERSION) ")
    if(_v MATCHES "OMPI_MAJOR_VERSION ([0-9]+).*OMPI_MINOR_VERSION ([0-9]+).*OMPI_RELEASE_VERSION ([0-9]+)")
      set(GEMEL_MPI_LIBRARY "Open MPI ${CMAKE_MATCH_1}.${CMAKE_MATCH_2}.${CMAKE_MATCH_3}")
    elseif(_v MATCHES "MPICH_VERSION \"([^\"]+)\"")
      set(GEMEL_MPI_LIBRARY "MPICH ${CMAKE_MATCH_1}")
    endif()
    break()
  endif()
endforeach()

set(GEMEL_OPENCV_VERSION "")
if(GEMEL_HAVE_OPENCV)
  if(OpenCV_VERSION)
    set(GEMEL_OPENCV_VERSION "${OpenCV_VERSION}")
  elseif(EXISTS "${GEMEL_OPENCV_INCLUDE_DIR}/opencv2/core/version.hpp")
    file(STRINGS "${GEMEL_OPENCV_INCLUDE_DIR}/opencv2/core/version.hpp" _v
         REGEX "^#define CV_VERSION_(MAJOR|MINOR|REVISION) ")
    string(REGEX REPLACE ".*MAJOR +([0-9]+).*MINOR +([0-9]+).*REVISION +([0-9]+).*" "\\1.\\2.\\3"
                         GEMEL_OPENCV_VERSION "${_v}")
  endif()
endif()

function(gemel_or_off value out)
  if("${value}" STREQUAL "")
    set(${out} "off" PARENT_SCOPE)
  else()
    set(${out} "${value}" PARENT_SCOPE)
  endif()
endfunction()
if(GEMEL_TORCH_CUDA)
  set(_torch "${Torch_VERSION} (CUDA ${GEMEL_TORCH_CUDA_VERSION})")
else()
  set(_torch "${Torch_VERSION} (CPU only)")
endif()
gemel_or_off("${GEMEL_CUDA_VERSION}" _cuda)
gemel_or_off("${GEMEL_CUDNN_VERSION}" _cudnn)
gemel_or_off("${GEMEL_NCCL_VERSION}" _nccl)
gemel_or_off("${GEMEL_OPENCV_VERSION}" _opencv)
message(STATUS "gemel: LibTorch ${_torch} | CUDA ${_cuda} | cuDNN ${_cudnn} | NCCL ${_nccl} | "
               "${GEMEL_MPI_LIBRARY} | HDF5 ${HDF5_VERSION} | OpenCV ${_opencv}")
if(GEMEL_EXPECT_CUDA AND NOT (GEMEL_TORCH_CUDA AND GEMEL_HAVE_NCCL))
  message(WARNING "gemel: GEMEL_EXPECT_CUDA is ON but this build has no CUDA LibTorch or no "
                  "NCCL: the BuildInfo test will fail. Point CMake at a CUDA LibTorch "
                  "(GEMEL_PYTHON or Torch_DIR) and NCCL (NCCL_ROOT), or configure with "
                  "-DGEMEL_EXPECT_CUDA=OFF for a CPU-only build.")
endif()

set(GEMEL_GENERATED_DIR "${PROJECT_BINARY_DIR}/generated")
configure_file("${PROJECT_SOURCE_DIR}/cmake/build_config.h.in"
               "${GEMEL_GENERATED_DIR}/gemel/build_config.h" @ONLY)
set(GEMEL_HAVE_CUDA_RUNTIME ${GEMEL_TORCH_CUDA})
set(GEMEL_HAVE_CUDA_KERNELS ${GEMEL_TORCH_CUDA})
configure_file("${PROJECT_SOURCE_DIR}/cmake/features.h.in"
               "${GEMEL_GENERATED_DIR}/gemel/features.h" @ONLY)
