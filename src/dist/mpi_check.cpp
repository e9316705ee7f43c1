#include "mpi_check.h"

#include <unistd.h>

#include <climits>
#include <cstring>

namespace gemel::dist {

std::string whereThisRankIs() {
  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "?");
  // The error path itself calls MPI only where it is allowed before MPI_Init and after
  // MPI_Finalize, and does not check those calls (their failure has nowhere else to go).
  int initialised = 0, finalized = 0, rank = 0, size = 1;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalized);
  if (initialised && !finalized) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
  }
  return format("host {}, rank {} of {}", host, rank, size);
}

void checkMpi(int rc, const char* call, const char* file, int line) {
  if (rc == MPI_SUCCESS) return;
  std::string name(call);
  name = name.substr(0, name.find('('));
  std::string path(file);
  // Relative to the source tree.
  for (const char* top : {"/src/", "/tests/"}) {
    const auto at = path.rfind(top);
    if (at != std::string::npos) {
      path = path.substr(at + 1);
      break;
    }
  }
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
  throw CommError(format("{} failed at {}:{} on {}: {} (MPI error {})", name, path, line,
                         whereThisRankIs(), text, rc));
}

}  // namespace gemel::dist
