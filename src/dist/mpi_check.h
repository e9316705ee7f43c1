#pragma once
// Internal to dist: MPI with the C API only, and every MPI call checked by GEMEL_MPI, which
// turns a failing return code into a CommError naming the call, file:line, host and rank.
#define OMPI_SKIP_MPICXX 1  // Open MPI's deprecated C++ bindings would need libmpi_cxx
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <string>

#include "gemel/core/error.h"

#define GEMEL_MPI(call) ::gemel::dist::checkMpi((call), #call, __FILE__, __LINE__)

namespace gemel::dist {

// "host node3, rank 1 of 2" (this process in MPI_COMM_WORLD), for messages of failed calls.
std::string whereThisRankIs();

// Throws CommError: the call (as written, up to its '('), the file and line, where this rank
// runs, and MPI's own error string. rc == MPI_SUCCESS returns.
void checkMpi(int rc, const char* call, const char* file, int line);

}  // namespace gemel::dist
