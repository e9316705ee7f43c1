#pragma once
// The gemel subcommands. Each takes its arguments (without the command name) and returns the
// process exit code; user errors are thrown as gemel::Error and reported by main().
#include <string>
#include <vector>

namespace gemel::cli {

using Args = std::vector<std::string>;

int runInspect(const Args& args);
int runTrain(const Args& args);
int runMerge(const Args& args);
int runEval(const Args& args);
int runExport(const Args& args);
int runBenchSync(const Args& args);
int runBench(const Args& args);
int runProfile(const Args& args);
int runSimulate(const Args& args);
int runReport(const Args& args);
// gemel version / gemel-data version (and --version): build and platform report.
int runVersion(const Args& args);

}  // namespace gemel::cli
