#include "gemel/merge/load.h"

#include <torch/torch.h>

#include <filesystem>

#include "gemel/core/error.h"
#include "gemel/core/format.h"
#include "gemel/merge/catalog.h"
#include "gemel/merge/model_layers.h"
#include "gemel/merge/planner.h"
#include "gemel/merge/tying.h"

namespace gemel::merge {

namespace fs = std::filesystem;

// Builds every task's model from a results file and ties the recorded plan as the merge does
// (materialize): each shared layer is one tensor in every model that uses it.
std::vector<std::unique_ptr<train::TaskRuntime>> loadMergedTasks(const io::Results& r,
                                                                 const std::string& path,
                                                                 const torch::Device& device,
                                                                 const std::string& datasets_dir) {
  std::vector<std::unique_ptr<train::TaskRuntime>> out;
  for (std::size_t i = 0; i < r.tasks.size(); ++i) {
    const auto& t = r.tasks[i];
    config::TaskConfig c;
    c.name = t.name;
    c.arch = t.arch;
    c.num_classes = t.num_classes;
    // --datasets-dir: the datasets moved with (or without) the results; same file names.
    c.dataset = datasets_dir.empty()
                    ? t.dataset
                    : (fs::path(datasets_dir) / fs::path(t.dataset).filename()).string();
    c.weights = t.arch == "torchscript" ? t.source : "";
    c.transforms.mean = t.mean;
    c.transforms.std = t.std;
    c.batch_size = 64;
    if (t.kind == "detection") {
      c.kind = config::TaskKind::kDetection;
      c.metric = t.metric;
    }
    if (t.image_size > 0) c.image_size = t.image_size;
    // Scored as the merge scored it.
    c.precision = t.precision;
    c.channels_last = t.channels_last ? "on" : "off";
    GEMEL_THROW_IF_NOT(fs::exists(c.dataset), InputError,
                       "task '{}': its dataset {} ({}) is missing; if the datasets moved, give "
                       "--datasets-dir with the directory that now holds {}",
                       c.name, c.dataset,
                       datasets_dir.empty() ? "recorded in " + path : "under --datasets-dir",
                       fs::path(t.dataset).filename().string());
    try {
      out.push_back(std::make_unique<train::TaskRuntime>(c, static_cast<int>(i), device, 0));
    } catch (const ConfigError& e) {
      // What the results recorded (arch, kind, classes) does not make a model: name the file.
      throw InputError(
          format("{} (/tasks/{}): {}; the file was altered or written by another "
                 "gemel",
                 path, t.name, e.what()));
    }
  }
  std::vector<models::Model*> models;
  std::vector<CatalogModel> described;
  Snapshot states;
  for (const auto& task : out) {
    models.push_back(&task->model());
    described.push_back(describeModel(task->name(), task->model()));
    states.push_back(io::fullStateDict(r, task->name()));
    // The file's tensors must fit the model before they are tied: an InputError naming the
    // file and the task, not a broken invariant further down.
    task->model().loadStateDict(
        states.back(), {false, format("{} (/tasks/{}, its params and the /shared tensors it uses)",
                                      path, task->name())});
  }
  const LayerCatalog catalog(std::move(described));
  const auto plan = SharingPlan::fromJson(r.plan_json, path + " (/search/state plan)");
  for (const auto& [key, members] : plan.instances()) {
    GEMEL_THROW_IF_NOT(
        key.first < static_cast<int>(catalog.groups().size()) &&
            key.second < static_cast<int>(catalog.groups()[key.first].instances.size()),
        InputError,
        "{}: the sharing plan names layer group {} instance {}, which its tasks' "
        "models do not have; the file was altered",
        path, key.first, key.second);
  }
  materialize(models, catalog, plan, states, plan);
  return out;
}

}  // namespace gemel::merge
