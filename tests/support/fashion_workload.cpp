#include "fashion_workload.h"

#include "gemel/core/format.h"
#include "gemel/data/sources.h"

namespace gemel::testing {

std::string writeFashionWorkload(const TempDir& dir, const std::string& file,
                                 const FashionWorkload& w) {
  std::string yaml = w.header + "tasks:\n";
  for (const auto& t : w.tasks) {
    data::FashionMnistOptions o;
    o.classes = t.classes;
    o.size = w.size;
    o.max_train = w.max_train;
    o.max_val = w.max_val;
    data::convertFashionMnist(o, dir.file(t.name.substr(0, t.name.rfind('_')) + "_CL.h5"));
    yaml += format("  - {name: {}, arch: resnet18, num_classes: {}{}}\n", t.name, t.classes.size(),
                   w.task_extra);
  }
  writeText(dir.file(file), yaml);
  return dir.file(file);
}

}  // namespace gemel::testing
