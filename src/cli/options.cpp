#include "gemel/cli/options.h"

#include <cstdio>

#include "gemel/core/error.h"
#include "gemel/core/format.h"
#include "gemel/models/archs.h"

namespace gemel::cli {

std::pair<std::string, int> parseArchSpec(const std::string& spec) {
  // darknet:<path>[:N]: the arch holds a colon; a count, if any, follows the last one.
  // darknet:<path>[:N] and fasterrcnn:<backbone>[:N] likewise.
  auto colon = spec.find(':');
  for (const std::string prefix : {"darknet:", "fasterrcnn:"}) {
    if (spec.rfind(prefix, 0) != 0) continue;
    colon = spec.rfind(':');
    const auto tail = spec.substr(colon + 1);
    if (colon < prefix.size() || tail.empty() ||
        tail.find_first_not_of("0123456789") != std::string::npos)
      colon = std::string::npos;
  }
  const auto arch = spec.substr(0, colon);
  GEMEL_THROW_IF_NOT(arch != models::kTorchScriptArch, UsageError,
                     "--arch '{}': a TorchScript model is built from its file, not by name; give "
                     "it with --config: a task with arch: torchscript and weights: FILE",
                     spec);
  GEMEL_THROW_IF_NOT(models::isZooArch(arch) || models::isTorchvisionDetectorArch(arch), UsageError,
                     "--arch '{}': '{}' is not an arch gemel builds{}; expected one of: {} "
                     "(optionally followed by :num_classes)",
                     spec, arch, didYouMean(arch, models::buildableArchNames()),
                     models::buildableArchList());
  if (colon == std::string::npos) return {arch, 1000};
  const auto count = spec.substr(colon + 1);
  const auto n = parseInt(count).value_or(0);
  GEMEL_THROW_IF_NOT(n >= 1, UsageError,
                     "--arch '{}': '{}' is not a number of classes; expected ARCH[:N] with N >= 1, "
                     "e.g. resnet50:3",
                     spec, count);
  return {arch, n};
}

}  // namespace gemel::cli

#include <iostream>

#include "gemel/core/log.h"

namespace gemel::cli {

bool parseCommandLine(const std::string& command, const std::string& synopsis,
                      po::options_description desc, const Args& args, po::variables_map& vm,
                      const std::string& program,
                      const po::positional_options_description* positional) {
  desc.add_options()("log-level", po::value<std::string>()->default_value("info"),
                     "trace, debug, info, warn, error or off")(
      "log-all-ranks", po::bool_switch(), "info lines from every MPI rank, not only rank 0")(
      "help,h", "show this help");
  try {
    po::command_line_parser parser(args);
    // No guessing: a prefix (--result, --epoch) is an unknown option, not a silent match.
    parser.options(desc).style(po::command_line_style::default_style &
                               ~po::command_line_style::allow_guessing);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: " << program << " " << command << " " << synopsis << "\n\n"
                << desc << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::unknown_option& e) {
    std::vector<std::string> names;
    for (const auto& o : desc.options()) names.push_back("--" + o->long_name());
    throw UsageError(std::string(e.what()) + didYouMean(e.get_option_name(), names) + "; run '" +
                     program + " " + command + " --help' for the options");
  } catch (const po::error& e) {
    throw UsageError(std::string(e.what()) + "; run '" + program + " " + command +
                     " --help' for the options");
  }
  log::setLevel(log::parseLevel(vm["log-level"].as<std::string>()));
  log::setAllRanks(vm["log-all-ranks"].as<bool>());
  return true;
}

}  // namespace gemel::cli
