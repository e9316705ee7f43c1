#include "gemel/cli/run_main.h"

#include <c10/util/Exception.h>

#include <cstdio>
#include <exception>

#include "gemel/core/error.h"

namespace gemel::cli {

int runMain(const char* program, const char* usage, int argc, char** argv,
            const Dispatch& dispatch) {
  if (argc < 2) {
    std::fputs(usage, stderr);
    return static_cast<int>(ExitCode::kUsage);
  }
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(usage, stdout);
    return 0;
  }
  if (command == "--version") {
    std::printf("%s %s\n", program, GEMEL_VERSION);
    return 0;
  }
  const Args args(argv + 2, argv + argc);
  try {
    return dispatch(command, args);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s %s: error: %s\n", program, command.c_str(), e.what());
    return static_cast<int>(e.code());
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "%s %s: internal error (LibTorch): %s\n", program, command.c_str(),
                 e.what_without_backtrace());
    return static_cast<int>(ExitCode::kInternal);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s %s: internal error: %s\n", program, command.c_str(), e.what());
    return static_cast<int>(ExitCode::kInternal);
  }
}

}  // namespace gemel::cli
