#pragma once
// Internal to dist: MPI with the C API only, and MPI return codes turned into exceptions.
#define OMPI_SKIP_MPICXX 1  // Open MPI's deprecated C++ bindings would need libmpi_cxx
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <string>

#include "gemel/core/error.h"

namespace gemel::dist {

// "rank 1 of 2" (this process in MPI_COMM_WORLD), for the messages of failed calls.
inline std::string whichRank() {
  int initialised = 0, rank = 0, size = 1;
  MPI_Initialized(&initialised);
  if (initialised) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
  return format("rank {} of {}", rank, size);
}

// Throws CommError naming the call, the rank and MPI's own error string.
inline void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    // MPI_Error_string is itself off limits before MPI_Init (Open MPI aborts).
    int initialised = 0;
    MPI_Initialized(&initialised);
    std::string text = "MPI is not initialised";
    if (initialised) {
      char buffer[MPI_MAX_ERROR_STRING];
      int len = 0;
      MPI_Error_string(rc, buffer, &len);
      text.assign(buffer, static_cast<std::size_t>(len));
    }
    throw CommError(format("{} failed on {}: {} (MPI error {})", what, whichRank(), text, rc));
  }
}

}  // namespace gemel::dist
