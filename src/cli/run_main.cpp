#include "gemel/cli/run_main.h"

#include <c10/util/Exception.h>

#include <cstdio>
#include <exception>
#include <filesystem>

#include "gemel/core/error.h"
#include "gemel/core/format.h"
#include "gemel/core/host_cache.h"
#include "gemel/core/memory.h"
#include "gemel/dist/cluster.h"

namespace gemel::cli {

int runMain(const char* program, const char* usage, int argc, char** argv,
            const Dispatch& dispatch) {
  if (argc < 2) {
    std::fputs(usage, stderr);
    return static_cast<int>(ExitCode::kUsage);
  }
  tuneHostAllocator();
  installHostCache();
  const std::string first = argv[1];
  if (first == "--help" || first == "-h" || first == "help") {
    std::fputs(usage, stdout);
    return 0;
  }
  // --version is the version command: one report for bug reports, whichever binary.
  const std::string command = first == "--version" ? "version" : first;
  const Args args(argv + 2, argv + argc);
  // One line per error, tagged with the rank in a multi-process job; then the whole job ends
  // (MPI_Abort) so that no other rank waits forever on this one.
  auto fail = [&](const std::string& kind, const char* what, int code) {
    const auto& c = dist::Cluster::get();
    const std::string where = c.distributed() ? " [rank " + std::to_string(c.rank()) + "/" +
                                                    std::to_string(c.size()) + "]"
                                              : "";
    std::fprintf(stderr, "%s %s%s: %s: %s\n", program, command.c_str(), where.c_str(), kind.c_str(),
                 what);
    std::fflush(stderr);
    dist::Cluster::abortJob(code);
    return code;
  };
  int code = 0;
  try {
    // The one process-wide object: the MPI job (initialised only under an MPI launcher).
    const dist::MpiWorld world(dist::Cluster::init());
    code = dispatch(command, args, world);
  } catch (const Error& e) {
    code = fail("error", e.what(), static_cast<int>(e.code()));
  } catch (const c10::Error& e) {
    code = fail("internal error (LibTorch)", e.what_without_backtrace(),
                static_cast<int>(ExitCode::kInternal));
  } catch (const std::filesystem::filesystem_error& e) {
    // A path the file system cannot resolve: a dangling or looped symbolic link, a directory
    // where a file belongs, a file where a directory belongs. The user's input, not a bug.
    std::string paths = e.path1().string();
    if (!e.path2().empty()) paths += ", " + e.path2().string();
    const auto message = format(
        "{}: {}; check this path (a dangling or looped symbolic link, or a directory where a "
        "file belongs, or the other way round)",
        paths.empty() ? "a path" : paths, e.code().message());
    code = fail("error", message.c_str(), static_cast<int>(ExitCode::kInput));
  } catch (const std::exception& e) {
    code = fail("internal error", e.what(), static_cast<int>(ExitCode::kInternal));
  }
  dist::Cluster::finalize();
  return code;
}

}  // namespace gemel::cli
