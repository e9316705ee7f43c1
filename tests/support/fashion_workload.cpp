#include "fashion_workload.h"

#include <stdexcept>

#include "gemel/core/format.h"
#include "gemel/data/sources.h"

namespace gemel::testing {

std::string writeFashionWorkload(const std::string& dir, const std::string& file,
                                 const FashionWorkload& w) {
  std::string yaml = w.header + "tasks:\n";
  for (const auto& t : w.tasks) {
    data::FashionMnistOptions o;
    o.classes = t.classes;
    o.size = w.size;
    o.max_train = w.max_train;
    o.max_val = w.max_val;
    const auto tail = "_" + t.arch;  // the camera's name is the task's without its arch
    const bool named = t.name.size() > tail.size() &&
                       t.name.compare(t.name.size() - tail.size(), tail.size(), tail) == 0;
    const auto camera =
        named ? t.name.substr(0, t.name.size() - tail.size()) : t.name.substr(0, t.name.rfind('_'));
    data::convertFashionMnist(o, dir + "/" + camera + "_CL.h5");
    yaml += format("  - {name: {}, arch: {}, num_classes: {}{}}\n", t.name, t.arch,
                   t.classes.size(), w.task_extra);
  }
  writeText(dir + "/" + file, yaml);
  return dir + "/" + file;
}

std::string writeTrainedTrio(const std::string& dir, const std::string& gemel_binary) {
  FashionWorkload w;
  w.header =
      "name: trio\n"
      "defaults: {batch_size: 32, accuracy_target: 0.1}  # trials pass: their weights are kept\n"
      "search: {strategy: greedy, epochs_per_trial: 1, lr: 0.01, max_trials: 2}\n";
  w.tasks = {{"shoes_a_resnet18", {5, 7, 9}},
             {"bags_b_resnet18", {8, 1, 3}},
             {"tops_c_resnet18", {0, 2, 6}}};
  writeFashionWorkload(dir, "trio.yaml", w);
  const auto r = run(shellQuote(gemel_binary) + " train --epochs 3 --lr 0.01 --config " +
                     shellQuote(dir + "/trio.yaml") + " --out " + shellQuote(dir + "/trained"));
  if (r.exit_code != 0) throw std::runtime_error("gemel train failed:\n" + r.output);
  return dir + "/trained/trio.trained.yaml";
}

std::string sharedTrainedTrio(const std::string& gemel_binary) {
  const auto dir = sharedTestDir("trio", gemel_binary, [&](const std::string& d) {
    writeTrainedTrio(d, gemel_binary);
    return true;
  });
  if (dir.empty()) throw std::runtime_error("the shared trained trio could not be made");
  return dir + "/trained/trio.trained.yaml";
}

std::string mpirunPrefix(int np) {
  // CMake's MPIEXEC_EXECUTABLE (FindMPI): the launcher of the MPI gemel was built with.
  return format(
      "timeout 300 {} -np {} --oversubscribe --allow-run-as-root --bind-to none "
      "--mca btl_vader_single_copy_mechanism none ",
      shellQuote(GEMEL_MPIEXEC), np);
}

}  // namespace gemel::testing
