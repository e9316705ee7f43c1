#pragma once
// The main() shared by gemel's executables: usage, --help and --version, then one command,
// with every exception turned into one line on stderr and the exit code its type stands for
// (core/error.h).
#include <functional>
#include <string>

#include "gemel/cli/options.h"
#include "gemel/dist/world.h"

namespace gemel::cli {

// Runs a command as one rank of the job this process belongs to (rank 0 of 1 without mpirun).
using Dispatch =
    std::function<int(const std::string& command, const Args& args, const dist::World& world)>;

int runMain(const char* program, const char* usage, int argc, char** argv,
            const Dispatch& dispatch);

}  // namespace gemel::cli
