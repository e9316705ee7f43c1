#pragma once
// Small real workloads for the merge tests: resnet18 camera tasks cut from Debian's
// Fashion-MNIST, each with its own class subset.
#include <cstdint>
#include <string>
#include <vector>

#include "test_support.h"

namespace gemel::testing {

struct FashionTask {
  std::string name;  // "<camera>_<arch>"; its dataset is <camera>_CL.h5
  std::vector<int> classes;
  std::string arch = "resnet18";
};

struct FashionWorkload {
  std::string header;  // YAML before "tasks:" (name, defaults, search)
  std::vector<FashionTask> tasks;
  int size = 16;  // image side
  int64_t max_train = 256, max_val = 96;
  std::string task_extra;  // appended to each task's flow map, e.g. ", transforms: {...}"
};

// Writes the datasets and `file` in `dir`; returns the YAML's path.
std::string writeFashionWorkload(const std::string& dir, const std::string& file,
                                 const FashionWorkload& workload);
inline std::string writeFashionWorkload(const TempDir& dir, const std::string& file,
                                        const FashionWorkload& workload) {
  return writeFashionWorkload(dir.path(), file, workload);
}

// A workload of one task: `header` (name, defaults, search), the task on its Fashion-MNIST
// classes, `max_train` and `max_val` images of `size` px. Returns the YAML's path.
inline std::string writeOneTaskWorkload(const TempDir& dir, const std::string& file,
                                        const std::string& header, const FashionTask& task,
                                        int64_t max_train, int64_t max_val, int size = 16) {
  FashionWorkload w;
  w.header = header;
  w.tasks = {task};
  w.max_train = max_train;
  w.max_val = max_val;
  w.size = size;
  return writeFashionWorkload(dir, file, w);
}

// Three resnet18 camera tasks at 16x16 with a low target (every trial passes, so its weights
// are kept), trained for three epochs at lr 0.01 by `gemel train` into dir/trained: what the
// distributed tests merge. (At lr 0.05, or after one epoch, a task can end at its random
// initialisation, kept as its best validated weights; retraining from there is chaotic: a
// last-bit difference grows to order-1 differences within a few steps.) Returns the trained
// workload's path (dir/trained/trio.trained.yaml).
std::string writeTrainedTrio(const std::string& dir, const std::string& gemel_binary);
inline std::string writeTrainedTrio(const TempDir& dir, const std::string& gemel_binary) {
  return writeTrainedTrio(dir.path(), gemel_binary);
}
// The same, made once per build in its shared test directory (read-only to its users: they
// write their outputs elsewhere).
std::string sharedTrainedTrio(const std::string& gemel_binary);

// "timeout 300 mpirun -np N ..." with the options the tests need on one machine, as root.
std::string mpirunPrefix(int np);

}  // namespace gemel::testing
