#pragma once
// Small real workloads for the merge tests: resnet18 camera tasks cut from Debian's
// Fashion-MNIST, each with its own class subset.
#include <cstdint>
#include <string>
#include <vector>

#include "test_support.h"

namespace gemel::testing {

struct FashionTask {
  std::string name;  // "<camera>_resnet18"; its dataset is <camera>_CL.h5
  std::vector<int> classes;
};

struct FashionWorkload {
  std::string header;  // YAML before "tasks:" (name, defaults, search)
  std::vector<FashionTask> tasks;
  int size = 16;  // image side
  int64_t max_train = 256, max_val = 96;
  std::string task_extra;  // appended to each task's flow map, e.g. ", transforms: {...}"
};

// Writes the datasets and `file` in `dir`; returns the YAML's path.
std::string writeFashionWorkload(const TempDir& dir, const std::string& file,
                                 const FashionWorkload& workload);

}  // namespace gemel::testing
