#pragma once
// Reads a workload YAML file into a Workload. Parsing and validation are separate steps (as in
// marian): the parser reports malformed YAML, unknown keys and values of the wrong type; the
// validator (validator.h) reports inconsistent values. loadWorkload() runs both and throws one
// ConfigError listing every problem found.
#include <string>
#include <vector>

#include "gemel/config/workload.h"

namespace gemel::config {

struct LoadOptions {
  std::string datasets_dir;       // overrides the file's datasets_dir when not empty
  bool require_datasets = false;  // dataset files must exist (commands that train or evaluate)
};

// Problems found so far, each already formatted as "file:line: key: message".
using Problems = std::vector<std::string>;

// Parse only; appends to `problems` instead of throwing (except for unreadable/malformed files).
Workload parseWorkload(const std::string& path, const std::string& datasets_dir_override,
                       Problems& problems);

// Parse, apply defaults, resolve paths and validate. Throws ConfigError with every problem.
Workload loadWorkload(const std::string& path, const LoadOptions& options = {});

}  // namespace gemel::config
