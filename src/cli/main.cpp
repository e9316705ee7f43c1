// gemel: merges the vision models of many video-analytics workloads so they fit in GPU memory.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "gemel/cli/commands.h"
#include "gemel/cli/run_main.h"
#include "gemel/core/error.h"
#include "gemel/core/format.h"
#include "gemel/core/log.h"

namespace {

constexpr const char* kUsage =
    "usage: gemel <command> [options]\n"
    "\n"
    "commands:\n"
    "  inspect   list the layers a workload's models can share and the bytes sharing saves\n"
    "  train     train each task's unmerged model; writes weights and a workload naming them\n"
    "  merge     search for the layers to share, retraining jointly; writes results.h5\n"
    "  eval      re-measure every task from results.h5 (shared tensors loaded once)\n"
    "  export    write a task's full state_dict (.pt; detectors also .cfg and .weights)\n"
    "  profile   measure load times, resident bytes and latency of the merged models on a device\n"
    "  simulate  run the edge scheduler on the profile: frames processed per memory budget\n"
    "  report    one HTML page with plots of the merge, the profile and the simulation\n"
    "  summary   one table, CSV and HTML page over a sweep's workloads (slurm/sweep.sbatch)\n"
    "  bench       training images/s of one model on synthetic data (e.g. yolov3-tiny at 416)\n"
    "  bench-sync  (under mpirun) GradSync's bandwidth against a raw MPI_Allreduce\n"
    "  version   what this gemel was built with and what it finds at run time (--json)\n"
    "\n"
    "Run 'gemel <command> --help' for the options of a command.\n";

int dispatch(const std::string& command, const gemel::cli::Args& args,
             const gemel::dist::World& world) {
  if (command == "inspect") return gemel::cli::runInspect(args, world);
  if (command == "train") return gemel::cli::runTrain(args, world);
  if (command == "merge") return gemel::cli::runMerge(args, world);
  if (command == "eval") return gemel::cli::runEval(args, world);
  if (command == "export") return gemel::cli::runExport(args, world);
  if (command == "profile") return gemel::cli::runProfile(args, world);
  if (command == "simulate") return gemel::cli::runSimulate(args, world);
  if (command == "report") return gemel::cli::runReport(args, world);
  if (command == "summary") return gemel::cli::runSummary(args, world);
  if (command == "bench-sync") return gemel::cli::runBenchSync(args, world);
  if (command == "bench") return gemel::cli::runBench(args, world);
  if (command == "version") return gemel::cli::runVersion(args, world);
  throw gemel::UsageError("'" + command + "' is not a gemel command" +
                          gemel::didYouMean(command, {"inspect", "train", "merge", "eval", "export",
                                                      "profile", "simulate", "report", "summary",
                                                      "bench", "bench-sync", "version"}) +
                          "; run 'gemel --help' for the list");
}

}  // namespace

int main(int argc, char** argv) {
  return gemel::cli::runMain("gemel", kUsage, argc, argv, dispatch);
}
