#pragma once
// --dump-config: the resolved workload (defaults applied, paths absolute) as YAML that
// loadWorkload() accepts again.
#include <string>

#include "gemel/config/workload.h"

namespace gemel::config {

std::string dumpWorkload(const Workload& workload);

}  // namespace gemel::config
