#include "gemel/config/parser.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <set>
#include <sstream>

#include "gemel/config/validator.h"
#include "gemel/core/error.h"
#include "gemel/core/format.h"
#include "gemel/models/archs.h"

namespace fs = std::filesystem;

namespace gemel::config {
namespace {

std::string typeName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "nothing";
    default:
      return "'" + node.Scalar() + "'";
  }
}

template <typename T>
const char* expectedName();
template <>
const char* expectedName<int>() {
  return "an integer";
}
template <>
const char* expectedName<double>() {
  return "a number";
}
template <>
const char* expectedName<bool>() {
  return "true or false";
}
template <>
const char* expectedName<std::string>() {
  return "a string";
}

// Reads typed values out of YAML maps, recording each key's line and every problem.
class Reader {
 public:
  Reader(std::string file, Problems& problems, SourceLines& lines)
      : file_(std::move(file)), problems_(problems), lines_(lines) {}

  void problem(const YAML::Node& node, const std::string& key, const std::string& message) {
    std::ostringstream out;
    out << file_;
    if (node.IsDefined() && node.Mark().line >= 0) out << ':' << node.Mark().line + 1;
    out << ": " << key << ": " << message;
    problems_.push_back(out.str());
  }

  void record(const std::string& key, const YAML::Node& node) {
    if (node.IsDefined() && node.Mark().line >= 0) lines_[key] = node.Mark().line + 1;
  }

  // Reports keys of `map` that are not in `allowed`, listing the allowed ones.
  void checkKeys(const YAML::Node& map, const std::string& path,
                 std::initializer_list<const char*> allowed) {
    if (!map.IsMap()) return;
    const std::set<std::string> known(allowed.begin(), allowed.end());
    for (const auto& kv : map) {
      const auto name = kv.first.Scalar();
      if (known.count(name)) continue;
      std::string list;
      for (const auto* k : allowed) list += std::string(list.empty() ? "" : ", ") + k;
      problem(kv.first, join(path, name),
              "unknown key" + didYouMean(name, {allowed.begin(), allowed.end()}) +
                  "; expected one of: " + list);
    }
  }

  template <typename T>
  bool read(const YAML::Node& map, const std::string& path, const std::string& name, T& out) {
    const YAML::Node node = map[name];
    if (!node.IsDefined()) return false;
    const auto key = join(path, name);
    record(key, node);
    if (!node.IsScalar()) {
      problem(node, key, "got " + typeName(node) + "; expected " + expectedName<T>());
      return false;
    }
    try {
      out = node.as<T>();
      return true;
    } catch (const YAML::Exception&) {
      problem(node, key, "got " + typeName(node) + "; expected " + expectedName<T>());
      return false;
    }
  }

  bool readNumbers(const YAML::Node& map, const std::string& path, const std::string& name,
                   std::vector<double>& out) {
    const YAML::Node node = map[name];
    if (!node.IsDefined()) return false;
    const auto key = join(path, name);
    record(key, node);
    if (!node.IsSequence()) {
      problem(node, key, "got " + typeName(node) + "; expected a list of numbers");
      return false;
    }
    std::vector<double> values;
    for (const auto& item : node) {
      try {
        values.push_back(item.as<double>());
      } catch (const YAML::Exception&) {
        problem(item, key, "got " + typeName(item) + " in the list; expected numbers");
        return false;
      }
    }
    out = values;
    return true;
  }

  bool expectMap(const YAML::Node& node, const std::string& key) {
    if (!node.IsDefined() || node.IsNull()) return false;
    record(key, node);
    if (node.IsMap()) return true;
    problem(node, key, "got " + typeName(node) + "; expected a mapping of keys to values");
    return false;
  }

  static std::string join(const std::string& path, const std::string& name) {
    return path.empty() ? name : path + "." + name;
  }

 private:
  std::string file_;
  Problems& problems_;
  SourceLines& lines_;
};

std::string resolvePath(const fs::path& base, const std::string& value) {
  fs::path p(value);
  if (p.is_relative()) p = base / p;
  return fs::absolute(p).lexically_normal().string();
}

void parseDefaults(Reader& r, const YAML::Node& node, Defaults& d) {
  if (!r.expectMap(node, "defaults")) return;
  r.checkKeys(node, "defaults", {"accuracy_target", "batch_size", "image_size"});
  r.read(node, "defaults", "accuracy_target", d.accuracy_target);
  r.read(node, "defaults", "batch_size", d.batch_size);
  if (r.read(node, "defaults", "image_size", d.image_size)) d.image_size_set = true;
}

void parseSearch(Reader& r, const YAML::Node& node, SearchConfig& s) {
  if (!r.expectMap(node, "search")) return;
  r.checkKeys(
      node, "search",
      {"strategy", "epochs_per_trial", "seconds_per_trial", "lr", "momentum", "weight_decay",
       "seed", "groups", "max_trials", "drop_after_epochs", "recovery_fraction", "time_budget"});
  r.read(node, "search", "strategy", s.strategy);
  r.read(node, "search", "epochs_per_trial", s.epochs_per_trial);
  r.read(node, "search", "seconds_per_trial", s.seconds_per_trial);
  r.read(node, "search", "lr", s.lr);
  r.read(node, "search", "momentum", s.momentum);
  r.read(node, "search", "weight_decay", s.weight_decay);
  r.read(node, "search", "seed", s.seed);
  r.read(node, "search", "max_trials", s.max_trials);
  r.read(node, "search", "drop_after_epochs", s.drop_after_epochs);
  r.read(node, "search", "recovery_fraction", s.recovery_fraction);
  r.read(node, "search", "time_budget", s.time_budget);
  std::vector<double> groups;
  if (r.readNumbers(node, "search", "groups", groups)) {
    for (const double g : groups) {
      if (g != static_cast<int>(g)) {
        r.problem(node["groups"], "search.groups",
                  "got " + std::to_string(g) + "; expected whole group numbers");
        break;
      }
      s.groups.push_back(static_cast<int>(g));
    }
  }
}

void parseTransforms(Reader& r, const YAML::Node& node, const std::string& path, Transforms& t) {
  if (!r.expectMap(node, path)) return;
  r.checkKeys(node, path, {"mean", "std", "hflip", "crop_padding", "scale_jitter"});
  r.readNumbers(node, path, "mean", t.mean);
  r.readNumbers(node, path, "std", t.std);
  r.read(node, path, "hflip", t.hflip);
  r.read(node, path, "crop_padding", t.crop_padding);
  r.read(node, path, "scale_jitter", t.scale_jitter);
}

// A Faster R-CNN task's `sampling`: torchvision's training-time keywords, by name.
void parseSampling(Reader& r, const YAML::Node& sampling, const std::string& path, TaskConfig& t) {
  if (!r.expectMap(sampling, path)) return;
  std::vector<std::string> names;
  for (const auto& [name, count] : samplingKeys()) names.push_back(name);
  for (const auto& kv : sampling) {
    const auto key = kv.first.Scalar();
    if (std::find(names.begin(), names.end(), key) == names.end()) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      r.problem(kv.first, path + "." + key,
                "unknown key" + didYouMean(key, names) + "; expected one of: " + list);
      continue;
    }
    double value = 0;
    if (r.read(sampling, path, key, value)) t.sampling[key] = value;
  }
}

TaskConfig parseTask(Reader& r, const YAML::Node& node, const std::string& path,
                     const Workload& w) {
  TaskConfig t;
  t.accuracy_target = w.defaults.accuracy_target;
  t.batch_size = w.defaults.batch_size;
  t.image_size = w.defaults.image_size;
  t.image_size_set = w.defaults.image_size_set;
  t.precision = w.precision;
  t.channels_last = w.channels_last;
  if (!node.IsMap()) {
    r.problem(node, path,
              "got " + typeName(node) + "; expected a task (a mapping with name, arch, ...)");
    return t;
  }
  r.record(path, node);
  r.checkKeys(
      node, path,
      {"name", "arch", "kind", "num_classes", "weights", "weights_backbone", "skip_head", "dataset",
       "unmerged_acc", "accuracy_target", "batch_size", "image_size", "transforms", "metric",
       "frozen_batchnorm", "trainable_backbone_layers", "sampling"});
  r.read(node, path, "name", t.name);
  r.read(node, path, "arch", t.arch);
  if (models::isSsdArch(t.arch)) {
    // An SSD's input side and normalisation are torchvision's for the arch unless the task sets
    // them (defaults.image_size is the classifiers').
    t.image_size = models::ssdDefaultSize(t.arch);
    t.transforms.mean = models::ssdDefaultMean(t.arch);
    t.transforms.std = models::ssdDefaultStd(t.arch);
  }
  std::string kind = "classification";
  if (r.read(node, path, "kind", kind)) {
    if (kind == "classification") {
      t.kind = TaskKind::kClassification;
    } else if (kind == "detection") {
      t.kind = TaskKind::kDetection;
    } else {
      r.problem(node["kind"], path + ".kind",
                "got '" + kind + "'; expected classification or detection");
    }
  }
  r.read(node, path, "num_classes", t.num_classes);
  const fs::path base(w.base_dir);
  std::string weights;
  if (r.read(node, path, "weights", weights) && !weights.empty())
    t.weights = resolvePath(base, weights);
  std::string backbone;
  if (r.read(node, path, "weights_backbone", backbone) && !backbone.empty())
    t.weights_backbone = resolvePath(base, backbone);
  r.read(node, path, "skip_head", t.skip_head);
  std::string dataset;
  if (r.read(node, path, "dataset", dataset) && !dataset.empty()) {
    t.dataset = resolvePath(fs::path(w.datasets_dir), dataset);
    t.dataset_explicit = true;
  }
  double acc = 0;
  if (r.read(node, path, "unmerged_acc", acc)) t.unmerged_acc = acc;
  r.read(node, path, "accuracy_target", t.accuracy_target);
  r.read(node, path, "batch_size", t.batch_size);
  if (r.read(node, path, "image_size", t.image_size)) t.image_size_set = true;
  r.read(node, path, "metric", t.metric);
  bool frozen = false;
  if (r.read(node, path, "frozen_batchnorm", frozen)) t.frozen_batchnorm = frozen;
  int trainable = 0;
  if (r.read(node, path, "trainable_backbone_layers", trainable))
    t.trainable_backbone_layers = trainable;
  parseSampling(r, node["sampling"], path + ".sampling", t);
  if (node["transforms"].IsDefined())
    parseTransforms(r, node["transforms"], path + ".transforms", t.transforms);
  if (!t.dataset_explicit && !t.name.empty()) {
    t.dataset = (fs::path(w.datasets_dir) / defaultDatasetName(t.name, t.arch, t.kind)).string();
  }
  return t;
}

}  // namespace

Workload parseWorkload(const std::string& path, const std::string& datasets_dir_override,
                       Problems& problems) {
  GEMEL_THROW_IF_NOT(fs::exists(path), ConfigError,
                     "{}: no such workload file; pass --config with the path of a workload YAML "
                     "(see configs/examples/)",
                     path);
  GEMEL_THROW_IF_NOT(!fs::is_directory(path), ConfigError,
                     "{}: is a directory; pass --config with the path of a workload YAML file",
                     path);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw ConfigError(format("{}: cannot be read; check its permissions", path));
  } catch (const YAML::ParserException& e) {
    throw ConfigError(format("{}:{}:{}: malformed YAML: {}; fix the syntax at that line", path,
                             e.mark.line + 1, e.mark.column + 1, e.msg));
  }

  Workload w;
  w.source_file = path;
  w.base_dir = fs::absolute(fs::path(path)).parent_path().lexically_normal().string();
  Reader r(path, problems, w.lines);
  if (!root.IsMap()) {
    r.problem(
        root, "(top level)",
        "got " + typeName(root) + "; expected a mapping with name, defaults, search and tasks");
    return w;
  }
  r.checkKeys(
      root, "",
      {"name", "datasets_dir", "defaults", "search", "precision", "channels_last", "tasks"});
  r.read(root, "", "name", w.name);
  r.read(root, "", "precision", w.precision);
  if (r.read(root, "", "channels_last", w.channels_last)) {  // true/false mean on/off
    if (w.channels_last == "true") w.channels_last = "on";
    if (w.channels_last == "false") w.channels_last = "off";
  }
  std::string datasets_dir = ".";
  r.read(root, "", "datasets_dir", datasets_dir);
  if (!datasets_dir_override.empty()) datasets_dir = datasets_dir_override;
  w.datasets_dir = resolvePath(fs::path(w.base_dir), datasets_dir);
  parseDefaults(r, root["defaults"], w.defaults);
  parseSearch(r, root["search"], w.search);

  const YAML::Node tasks = root["tasks"];
  if (tasks.IsDefined() && !tasks.IsNull()) {
    r.record("tasks", tasks);
    if (!tasks.IsSequence()) {
      r.problem(tasks, "tasks", "got " + typeName(tasks) + "; expected a list of tasks");
    } else {
      for (std::size_t i = 0; i < tasks.size(); ++i) {
        w.tasks.push_back(parseTask(r, tasks[i], "tasks[" + std::to_string(i) + "]", w));
      }
    }
  }
  return w;
}

Workload loadWorkload(const std::string& path, const LoadOptions& options) {
  Problems problems;
  Workload w = parseWorkload(path, options.datasets_dir, problems);
  validateWorkload(w, options, problems);
  if (!problems.empty()) {
    std::ostringstream out;
    out << problems.size() << (problems.size() == 1 ? " problem" : " problems") << " in workload "
        << path << ":";
    for (const auto& p : problems) out << "\n  " << p;
    throw ConfigError(out.str());
  }
  return w;
}

}  // namespace gemel::config
