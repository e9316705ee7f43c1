#include "gemel/config/workload.h"

namespace gemel::config {

std::string toString(TaskKind kind) {
  return kind == TaskKind::kClassification ? "classification" : "detection";
}

std::string Workload::where(const std::string& key) const {
  const auto it = lines.find(key);
  if (it == lines.end()) return source_file;
  return source_file + ":" + std::to_string(it->second);
}

const std::vector<std::pair<std::string, bool>>& samplingKeys() {
  static const std::vector<std::pair<std::string, bool>> keys = {
      {"rpn_batch_size_per_image", true}, {"rpn_positive_fraction", false},
      {"rpn_pre_nms_top_n_train", true},  {"rpn_post_nms_top_n_train", true},
      {"box_batch_size_per_image", true}, {"box_positive_fraction", false}};
  return keys;
}

const TaskConfig* Workload::findTask(const std::string& task_name) const {
  for (const auto& t : tasks) {
    if (t.name == task_name) return &t;
  }
  return nullptr;
}

std::string defaultDatasetName(const std::string& task_name, const std::string& arch,
                               TaskKind kind) {
  const std::string suffix = kind == TaskKind::kClassification ? "_CL" : "_OD";
  const std::string arch_suffix = "_" + arch;
  std::string stem = task_name;
  if (stem.size() > arch_suffix.size() &&
      stem.compare(stem.size() - arch_suffix.size(), arch_suffix.size(), arch_suffix) == 0) {
    stem.resize(stem.size() - arch_suffix.size());
  }
  return stem + suffix + ".h5";
}

}  // namespace gemel::config
