#pragma once
// Semantic checks of a parsed workload: values in range, names unique, known archs, files
// present. Each problem names the file, line, key, the bad value and what is expected.
#include "gemel/config/parser.h"
#include "gemel/config/workload.h"

namespace gemel::config {

void validateWorkload(const Workload& workload, const LoadOptions& options, Problems& problems);

}  // namespace gemel::config
