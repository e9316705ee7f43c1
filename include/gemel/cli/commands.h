#pragma once
// The gemel subcommands. Each takes its arguments (without the command name) and returns the
// process exit code; user errors are thrown as gemel::Error and reported by main().
#include <string>
#include <vector>

namespace gemel::dist {
class World;
}

namespace gemel::cli {

using Args = std::vector<std::string>;

int runInspect(const Args& args, const dist::World& world);
int runTrain(const Args& args, const dist::World& world);
int runMerge(const Args& args, const dist::World& world);
int runEval(const Args& args, const dist::World& world);
int runExport(const Args& args, const dist::World& world);
int runBenchSync(const Args& args, const dist::World& world);
int runBench(const Args& args, const dist::World& world);
int runProfile(const Args& args, const dist::World& world);
int runSimulate(const Args& args, const dist::World& world);
int runReport(const Args& args, const dist::World& world);
int runSummary(const Args& args, const dist::World& world);
// gemel version / gemel-data version (and --version): build and platform report.
int runVersion(const Args& args, const dist::World& world);

}  // namespace gemel::cli
