#include <ATen/Parallel.h>

#include <cstdlib>

#include "gemel/cli/options.h"
#include "gemel/core/host_cache.h"
#include "gemel/core/log.h"
#include "gemel/dist/world.h"

namespace gemel::cli {

void addThreadsOption(po::options_description& desc) {
  desc.add_options()("threads", po::value<int>()->default_value(0),
                     "CPU threads per rank (default: OMP_NUM_THREADS, else the CPUs this process "
                     "may use, shared by the ranks on the node)");
}

ThreadChoice setupThreads(const po::variables_map& vm, const dist::World& world, bool quiet) {
  const int requested = vm.count("threads") ? vm["threads"].as<int>() : 0;
  const auto choice =
      chooseThreads(requested, std::getenv("OMP_NUM_THREADS"), cpuBudget(), world.localSize());
  at::set_num_threads(choice.threads);
  shareHostCache(world.localSize());
  if (!quiet) log::info("threads", "{} CPU threads per rank ({})", choice.threads, choice.why);
  return choice;
}

}  // namespace gemel::cli
