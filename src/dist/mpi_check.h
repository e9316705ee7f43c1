#pragma once
// Internal to dist: MPI with the C API only, and MPI return codes turned into exceptions.
#define OMPI_SKIP_MPICXX 1  // Open MPI's deprecated C++ bindings would need libmpi_cxx
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <string>

#include "gemel/core/error.h"

namespace gemel::dist {

inline void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw Error(format("{} failed: {}", what, std::string(text, len)));
  }
}

}  // namespace gemel::dist
