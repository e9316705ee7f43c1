#pragma once
// The merged models of a results.h5, as `gemel eval` scores them: every task's model built and
// loaded from the file, and the recorded plan tied as the merge tied it (materialize): each
// shared layer is one tensor in every model that uses it. A file that does not make these
// models (altered, or written by another gemel) is one InputError naming it.
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "gemel/io/results.h"
#include "gemel/train/task.h"

namespace gemel::merge {

std::vector<std::unique_ptr<train::TaskRuntime>> loadMergedTasks(
    const io::Results& results, const std::string& path, const torch::Device& device,
    const std::string& datasets_dir = "");

}  // namespace gemel::merge
