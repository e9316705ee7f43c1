# NCCL for the GPU gradient all-reduce: only when LibTorch has CUDA and nccl.h and libnccl are
# found (NCCL_ROOT, NCCL_INCLUDE_DIR and NCCL_LIB_DIR are honoured, as gpu-kit sets them).
# Defines GEMEL_HAVE_NCCL and the target gemel::nccl.
set(GEMEL_HAVE_NCCL OFF)
if(TARGET torch_cuda OR TARGET c10_cuda)
  find_path(GEMEL_NCCL_INCLUDE_DIR nccl.h
    HINTS ${NCCL_INCLUDE_DIR} $ENV{NCCL_INCLUDE_DIR} ${NCCL_ROOT}/include $ENV{NCCL_ROOT}/include)
  find_library(GEMEL_NCCL_LIBRARY NAMES nccl libnccl.so.2
    HINTS ${NCCL_LIB_DIR} $ENV{NCCL_LIB_DIR} ${NCCL_ROOT}/lib $ENV{NCCL_ROOT}/lib)
  if(GEMEL_NCCL_INCLUDE_DIR AND GEMEL_NCCL_LIBRARY)
    add_library(gemel::nccl INTERFACE IMPORTED)
    target_include_directories(gemel::nccl INTERFACE ${GEMEL_NCCL_INCLUDE_DIR})
    target_link_libraries(gemel::nccl INTERFACE ${GEMEL_NCCL_LIBRARY})
    set(GEMEL_HAVE_NCCL ON)
    message(STATUS "gemel: NCCL ${GEMEL_NCCL_LIBRARY}: nccl backend enabled")
  else()
    message(STATUS "gemel: LibTorch has CUDA but NCCL was not found: GPU ranks use the MPI backend")
  endif()
else()
  message(STATUS "gemel: CPU-only LibTorch: nccl backend disabled")
endif()
