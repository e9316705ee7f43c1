# Use ccache when it is installed: LibTorch translation units are slow to compile on small
# machines, and ccache makes rebuilds of a fresh clone (CI) and of unchanged files cheap.
option(GEMEL_USE_CCACHE "Compile through ccache when it is available" ON)
if(GEMEL_USE_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  find_program(GEMEL_CCACHE_PROGRAM ccache)
  if(GEMEL_CCACHE_PROGRAM)
    set(CMAKE_CXX_COMPILER_LAUNCHER "${GEMEL_CCACHE_PROGRAM}")
    message(STATUS "gemel: compiling through ${GEMEL_CCACHE_PROGRAM}")
  endif()
endif()
