#pragma once
// Helpers shared by the subcommands' option parsing (Boost.Program_options stays in .cpp files).
#include <cstdint>
#include <string>
#include <utility>

#include <boost/program_options.hpp>

#include "gemel/cli/commands.h"
#include "gemel/core/threads.h"

namespace gemel::cli {

namespace po = boost::program_options;

// Parses `args` against `desc` plus the common options (--help, --log-level). Returns false
// when --help was given (the help text is then printed). Throws UsageError on bad options.
bool parseCommandLine(const std::string& command, const std::string& synopsis,
                      po::options_description desc, const Args& args, po::variables_map& vm,
                      const std::string& program = "gemel",
                      const po::positional_options_description* positional = nullptr);

// "resnet50:3" -> {"resnet50", 3}; "vgg16" -> {"vgg16", 1000}. Throws UsageError.
std::pair<std::string, int> parseArchSpec(const std::string& spec);

// --threads, and applying it: --threads, else OMP_NUM_THREADS, else the CPUs this process may
// use (affinity, cgroup quota) divided by the ranks on this node; given to LibTorch's
// intra-op pool and logged (unless quiet). Call after dist::Cluster::init.
void addThreadsOption(po::options_description& desc);
// Threads per rank: the CPUs this process may use, shared by the ranks on its host.
ThreadChoice setupThreads(const po::variables_map& vm, const dist::World& world,
                          bool quiet = false);

}  // namespace gemel::cli
