// gemel-data import: an original-Gemel workload brought over in one step (sources.h).
#include <algorithm>
#include <filesystem>
#include <map>

#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "gemel/core/format.h"
#include "gemel/core/log.h"
#include "gemel/data/dataset.h"
#include "gemel/data/sources.h"
#include "gemel/models/archs.h"

namespace gemel::data {
namespace {

namespace fs = std::filesystem;

// Arch names as the original tool's task names spell them, and the gemel arch each is.
const std::map<std::string, std::string>& archAliases() {
  static const std::map<std::string, std::string> aliases = {
      {"inception", "inception_v3"},
      {"inceptionv3", "inception_v3"},
      {"mobilenetv3", "mobilenet_v3_large"},
      {"mobilenet_v3", "mobilenet_v3_large"},
      {"mobilenetv2", "mobilenet_v2"},
      {"yolov3tiny", "yolov3-tiny"},
      {"yolov3_tiny", "yolov3-tiny"},
      {"ssd", "ssd300_vgg16"},
      {"ssd300", "ssd300_vgg16"},
      {"ssd_vgg16", "ssd300_vgg16"},
      {"ssdlite", "ssdlite320_mobilenet_v3_large"},
      {"ssdlite320", "ssdlite320_mobilenet_v3_large"},
  };
  return aliases;
}

// The gemel arch a task-name suffix stands for ("" when none): a zoo, SSD or Faster R-CNN
// name, "fasterrcnn_<backbone>" (the original tool's build over a plain backbone), or an alias.
std::string archFor(const std::string& suffix) {
  if (suffix == "yolov3" || suffix == "yolov3-tiny") return suffix;
  if ((models::isZooArch(suffix) && suffix.find(':') == std::string::npos) ||
      models::isTorchvisionDetectorArch(suffix))
    return suffix;
  for (const std::string prefix : {"fasterrcnn_", "faster_rcnn_"}) {
    if (suffix.rfind(prefix, 0) == 0 && suffix != "fasterrcnn_resnet50_fpn") {
      const auto arch = "fasterrcnn:" + suffix.substr(prefix.size());
      if (models::isFasterRcnnArch(arch)) return arch;
    }
  }
  const auto it = archAliases().find(suffix);
  return it == archAliases().end() ? "" : it->second;
}

struct Found {
  std::string name;  // the folder's name without _CL / _OD
  fs::path folder;
  DatasetKind kind;
};

// The <name>_CL and <name>_OD folders directly in `dir`, by name.
std::vector<Found> findDatasets(const fs::path& dir) {
  std::vector<Found> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_directory()) continue;
    const auto name = entry.path().filename().string();
    if (name.size() < 4) continue;
    const auto tail = name.substr(name.size() - 3);
    if (tail != "_CL" && tail != "_OD") continue;
    out.push_back({name.substr(0, name.size() - 3), entry.path(),
                   tail == "_CL" ? DatasetKind::kClassification : DatasetKind::kDetection});
  }
  std::sort(out.begin(), out.end(), [](const Found& a, const Found& b) {
    return a.folder.filename() < b.folder.filename();
  });
  return out;
}

// The folder holding the datasets: `src` itself, or the original tool's
// dataset_formation/datasets under it.
fs::path datasetsFolder(const std::string& src) {
  GEMEL_THROW_IF_NOT(fs::is_directory(src), InputError,
                     "--src {}: not a directory; give the original tool's "
                     "dataset_formation/datasets folder (or the folder holding it)",
                     src);
  const auto nested = fs::path(src) / "dataset_formation" / "datasets";
  if (findDatasets(src).empty() && fs::is_directory(nested)) return nested;
  return src;
}

struct PlannedTask {
  std::string name, arch;
  const Found* dataset = nullptr;
};

PlannedTask planTask(const std::string& task, const std::vector<Found>& found,
                     const std::string& src) {
  std::vector<std::string> names;
  for (const auto& f : found) names.push_back(f.folder.filename().string());
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  // The longest dataset name that the task's name starts with, followed by "_" and an arch.
  const Found* best = nullptr;
  std::string arch;
  for (const auto& f : found) {
    if (task.size() <= f.name.size() + 1 || task.compare(0, f.name.size(), f.name) != 0 ||
        task[f.name.size()] != '_')
      continue;
    const auto candidate = archFor(task.substr(f.name.size() + 1));
    if (candidate.empty()) continue;
    const bool detector =
        models::isTorchvisionDetectorArch(candidate) || candidate.rfind("yolov3", 0) == 0;
    if (detector != (f.kind == DatasetKind::kDetection)) continue;
    if (!best || f.name.size() > best->name.size()) {
      best = &f;
      arch = candidate;
    }
  }
  GEMEL_THROW_IF_NOT(best != nullptr, UsageError,
                     "--task {}: no dataset in {} for it; a task's name is its dataset's name "
                     "followed by _<arch> (e.g. main_2nd_cars_people_resnet50 for "
                     "main_2nd_cars_people_CL), with a classifier arch for a _CL folder and a "
                     "detector arch for an _OD folder; folders found: {}",
                     task, src, list.empty() ? "none" : list);
  return {task, arch, best};
}

// A pickled or state_dict weights file for the task in `dir`: <task>.pt or .pth.
std::string weightsFor(const std::string& dir, const std::string& task) {
  if (dir.empty()) return "";
  for (const char* ext : {".pt", ".pth"}) {
    const auto path = fs::path(dir) / (task + ext);
    if (fs::is_regular_file(path)) return fs::absolute(path).lexically_normal().string();
  }
  return "";
}

}  // namespace

std::string importOriginalWorkload(const ImportOptions& options) {
  GEMEL_THROW_IF_NOT(!options.tasks.empty(), UsageError,
                     "give at least one --task NAME (a dataset's name followed by _<arch>)");
  const auto dir = datasetsFolder(options.src);
  const auto found = findDatasets(dir);
  std::vector<PlannedTask> tasks;
  for (const auto& t : options.tasks) tasks.push_back(planTask(t, found, dir.string()));

  fs::create_directories(options.out);
  std::map<std::string, int64_t> classes;  // converted file -> its class count
  for (const auto& f : found) {
    const auto file = f.folder.filename().string() + ".h5";
    const auto path = (fs::path(options.out) / file).string();
    log::info("data", "{} -> {}", f.folder.string(), path);
    std::vector<int64_t> counts;
    if (f.kind == DatasetKind::kClassification) {
      ImageFolderOptions o;
      static_cast<ConvertOptions&>(o) = options.convert;
      o.root = f.folder.string();
      counts = convertImageFolder(o, path);
    } else {
      YoloOptions o;
      static_cast<ConvertOptions&>(o) = options.convert;
      o.root = f.folder.string();
      counts = convertYolo(o, path);
    }
    log::info("data", "{}: {} train and {} val images", path, counts[0], counts[1]);
    classes[file] = static_cast<int64_t>(DatasetReader(path).info().classes.size());
  }

  std::string yaml = format(
      "# Imported by gemel-data import from\n#   {}\n"
      "# one task per --task, each on its converted dataset. Tasks with weights start from them\n"
      "# (torch.save(model) or a state_dict); the others train from scratch in `gemel train`.\n"
      "name: {}\n"
      "datasets_dir: .\n",
      fs::absolute(dir).lexically_normal().string(), options.name);
  yaml += "defaults: {accuracy_target: 0.95, batch_size: 16, image_size: " +
          std::to_string(options.image_size) + "}\ntasks:\n";
  for (const auto& t : tasks) {
    const auto file = t.dataset->folder.filename().string() + ".h5";
    const bool detection = t.dataset->kind == DatasetKind::kDetection;
    yaml += format("  - name: {}\n    arch: {}\n    kind: {}\n    num_classes: {}\n", t.name,
                   t.arch, detection ? "detection" : "classification", classes.at(file));
    yaml += format("    dataset: {}\n", file);
    const auto weights = weightsFor(options.weights_dir, t.name);
    if (!weights.empty()) yaml += format("    weights: {}\n", weights);
    log::info("data", "task {}: {} on {}{}", t.name, t.arch, file,
              weights.empty() ? " (no weights: trains from scratch)" : ", weights " + weights);
  }
  const auto yaml_path = (fs::path(options.out) / (options.name + ".yaml")).string();
  writeFileAtomic(yaml_path, yaml.data(), yaml.size());
  return yaml_path;
}

}  // namespace gemel::data
