// gemel: merges the vision models of many video-analytics workloads so they fit in GPU memory.
#include <c10/util/Exception.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "gemel/cli/commands.h"
#include "gemel/core/error.h"
#include "gemel/core/log.h"

namespace {

constexpr const char* kUsage =
    "usage: gemel <command> [options]\n"
    "\n"
    "commands:\n"
    "  inspect   list the layers a workload's models can share and the bytes sharing saves\n"
    "\n"
    "Run 'gemel <command> --help' for the options of a command.\n";

int dispatch(const std::string& command, const gemel::cli::Args& args) {
  if (command == "inspect") return gemel::cli::runInspect(args);
  throw gemel::UsageError("'" + command +
                          "' is not a gemel command; run 'gemel --help' for the list");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return static_cast<int>(gemel::ExitCode::kUsage);
  }
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (command == "--version") {
    std::printf("gemel 0.1.0\n");
    return 0;
  }
  const gemel::cli::Args args(argv + 2, argv + argc);
  try {
    return dispatch(command, args);
  } catch (const gemel::Error& e) {
    std::fprintf(stderr, "gemel %s: error: %s\n", command.c_str(), e.what());
    return static_cast<int>(e.code());
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "gemel %s: internal error (LibTorch): %s\n", command.c_str(),
                 e.what_without_backtrace());
    return static_cast<int>(gemel::ExitCode::kInternal);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gemel %s: internal error: %s\n", command.c_str(), e.what());
    return static_cast<int>(gemel::ExitCode::kInternal);
  }
}
