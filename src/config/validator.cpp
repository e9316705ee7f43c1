#include "gemel/config/validator.h"

#include <filesystem>
#include <map>
#include <sstream>

#include "gemel/core/format.h"
#include "gemel/models/archs.h"
#include "gemel/models/darknet_cfg.h"

namespace fs = std::filesystem;

namespace gemel::config {
namespace {

bool validName(const std::string& name) {
  if (name.empty()) return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

template <typename T>
std::string show(const T& value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

class Checker {
 public:
  Checker(const Workload& w, Problems& problems) : w_(w), problems_(problems) {}

  void add(const std::string& key, const std::string& message) {
    problems_.push_back(w_.where(key) + ": " + key + ": " + message);
  }

  void fraction(const std::string& key, double value) {
    if (!(value > 0.0 && value <= 1.0)) {
      add(key, "got " + show(value) + "; expected a fraction in (0, 1], e.g. 0.95");
    }
  }

  void positive(const std::string& key, int value) {
    if (value < 1) add(key, "got " + show(value) + "; expected a positive integer");
  }

 private:
  const Workload& w_;
  Problems& problems_;
};

// A task's transforms: mean and std per channel, jitter, padding.
void checkTransforms(Checker& c, const Transforms& tr, const std::string& path) {
  if (tr.mean.size() != 3) {
    c.add(path + ".transforms.mean",
          "got " + show(tr.mean.size()) + " values; expected 3 (R, G, B)");
  }
  if (tr.std.size() != 3) {
    c.add(path + ".transforms.std", "got " + show(tr.std.size()) + " values; expected 3 (R, G, B)");
  }
  for (const double s : tr.std) {
    if (!(s > 0)) {
      c.add(path + ".transforms.std", "got " + show(s) + "; expected positive values");
      break;
    }
  }
  if (!(tr.scale_jitter >= 0 && tr.scale_jitter < 1)) {
    c.add(path + ".transforms.scale_jitter",
          "got " + show(tr.scale_jitter) + "; expected a fraction in [0, 1)");
  }
  if (tr.crop_padding < 0) {
    c.add(path + ".transforms.crop_padding", "got " + show(tr.crop_padding) + "; expected >= 0");
  }
}

// A task's arch: known, and one that tasks can use.
void checkArch(Checker& c, const TaskConfig& t, const std::string& path) {
  if (t.arch.empty()) {
    c.add(path + ".arch", "missing; expected one of: " + models::knownArchList());
  } else if (t.arch != models::kTorchScriptArch && !models::isZooArch(t.arch) &&
             !models::isTorchvisionDetectorArch(t.arch)) {
    c.add(path + ".arch", "got '" + t.arch + "', which is not a known arch" +
                              didYouMean(t.arch, models::archNames()) +
                              "; expected one of: " + models::knownArchList());
  }
}

// A Faster R-CNN's start: weights_backbone, and torchvision's fine-tuning switches.
void checkDetectorStart(Checker& c, const TaskConfig& t, const std::string& path) {
  if (!t.weights_backbone.empty()) {
    if (!models::isFasterRcnnArch(t.arch)) {
      c.add(path + ".weights_backbone",
            "is set, but arch '" + t.arch +
                "' is not a Faster R-CNN; only a detector starts its backbone from a classifier");
    } else if (!t.weights.empty()) {
      c.add(path + ".weights_backbone",
            "is set together with weights, which already hold the whole detector; remove one");
    } else if (!fs::exists(t.weights_backbone) || fs::is_directory(t.weights_backbone)) {
      c.add(path + ".weights_backbone",
            "file '" + t.weights_backbone +
                "' does not exist or is a directory; expected a classifier's state_dict (.pt)");
    }
  }
  // torchvision's fine-tuning switches: its FPN build only (the plain-backbone builds of the
  // original Gemel train every layer).
  const bool fpn = t.arch == "fasterrcnn_resnet50_fpn";
  if (t.frozen_batchnorm && !fpn) {
    c.add(path + ".frozen_batchnorm",
          "is set, but only arch fasterrcnn_resnet50_fpn has it (torchvision's FrozenBatchNorm2d "
          "body); remove the key");
  }
  if (!t.sampling.empty() && !models::isFasterRcnnArch(t.arch)) {
    c.add(path + ".sampling",
          "is set, but arch '" + t.arch + "' is not a Faster R-CNN; remove the key");
  }
  for (const auto& [key, count] : samplingKeys()) {
    const auto it = t.sampling.find(key);
    if (it == t.sampling.end()) continue;
    const double v = it->second;
    if (count && (v < 1 || v != static_cast<double>(static_cast<int64_t>(v)))) {
      c.add(path + ".sampling." + key, "got " + show(v) + "; expected a whole number >= 1");
    } else if (!count && !(v > 0 && v <= 1)) {
      c.add(path + ".sampling." + key, "got " + show(v) + "; expected a fraction in (0, 1]");
    }
  }
  if (t.trainable_backbone_layers) {
    if (!fpn) {
      c.add(path + ".trainable_backbone_layers",
            "is set, but only arch fasterrcnn_resnet50_fpn has it; remove the key");
    } else if (*t.trainable_backbone_layers < 0 || *t.trainable_backbone_layers > 5) {
      c.add(path + ".trainable_backbone_layers",
            "got " + show(*t.trainable_backbone_layers) +
                "; expected 0 to 5 (how many of conv1, layer1, ..., layer4 train, from layer4 "
                "down)");
    }
  }
}

void checkTask(Checker& c, const TaskConfig& t, const std::string& path,
               const LoadOptions& options) {
  if (t.name.empty()) {
    c.add(path + ".name", "missing; every task needs a unique name");
  } else if (!validName(t.name)) {
    c.add(path + ".name", "got '" + t.name + "'; expected letters, digits, '_', '-' or '.' only");
  }
  checkArch(c, t, path);
  const bool script = t.arch == models::kTorchScriptArch;
  const bool darknet = models::isDarknetArch(t.arch);
  const bool detector = darknet || models::isTorchvisionDetectorArch(t.arch);
  const bool known = script || models::isZooArch(t.arch) || detector;
  // (an unknown arch has had its one error above: no second guess at what kind it is)
  if (t.kind == TaskKind::kDetection && known && !detector) {
    c.add(path + ".kind", "got 'detection', but arch '" + t.arch +
                              "' is a classification model; use kind: classification");
  }
  if (t.kind == TaskKind::kClassification && detector) {
    c.add(path + ".kind", "missing or 'classification', but arch '" + t.arch +
                              "' is a detector; use kind: detection");
  }
  if (!t.metric.empty()) {
    const bool detection = t.kind == TaskKind::kDetection;
    const bool ok = detection ? (t.metric == "map50" || t.metric == "map") : t.metric == "top1";
    if (!ok) {
      c.add(path + ".metric", "got '" + t.metric + "'; a " +
                                  (detection ? "detection task is scored by map50 (mAP@0.5, "
                                               "the default) or map (COCO mAP@[.5:.95])"
                                             : "classification task is scored by top1"));
    }
  }
  if (darknet && t.image_size % 32 != 0) {
    c.add(path + ".image_size", "got " + show(t.image_size) + "; arch '" + t.arch +
                                    "' needs a multiple of 32 (e.g. 416)");
  }
  if (!script && t.num_classes < 1) {
    c.add(path + ".num_classes", t.num_classes == 0
                                     ? std::string("missing; expected the number of classes (>= 1)")
                                     : "got " + show(t.num_classes) + "; expected an integer >= 1");
  }
  if (script && t.weights.empty()) {
    c.add(path + ".weights",
          "missing; arch 'torchscript' needs weights: the TorchScript module file");
  }
  if (!t.weights.empty()) {
    if (!fs::exists(t.weights)) {
      c.add(path + ".weights",
            "file '" + t.weights +
                "' does not exist; fix the path (relative paths start at the "
                "workload file's directory) or remove the key to train from scratch");
    } else if (fs::is_directory(t.weights)) {
      c.add(path + ".weights", "'" + t.weights + "' is a directory; expected a .pt file");
    }
  }
  if (t.skip_head && t.weights.empty()) {
    c.add(path + ".skip_head",
          "is true but the task has no weights; remove skip_head or add weights");
  }
  if (options.require_datasets && !t.dataset.empty() && !fs::exists(t.dataset)) {
    c.add(path + (t.dataset_explicit ? ".dataset" : ".name"),
          "dataset '" + t.dataset + "' does not exist; build it with gemel-data" +
              (t.dataset_explicit ? std::string() : " or set the task's dataset key"));
  }
  if (t.unmerged_acc) c.fraction(path + ".unmerged_acc", *t.unmerged_acc);
  c.fraction(path + ".accuracy_target", t.accuracy_target);
  c.positive(path + ".batch_size", t.batch_size);
  const int min_size = models::minImageSize(t.arch);
  if (t.image_size < min_size) {
    c.add(path + ".image_size", "got " + show(t.image_size) + "; expected at least " +
                                    show(min_size) + " pixels for arch '" + t.arch + "'");
  }
  checkTransforms(c, t.transforms, path);
  checkDetectorStart(c, t, path);
}

}  // namespace

void validateWorkload(const Workload& w, const LoadOptions& options, Problems& problems) {
  Checker c(w, problems);
  if (w.name.empty()) {
    c.add("name", "missing; give the workload a name");
  } else if (!validName(w.name)) {
    c.add("name", "got '" + w.name + "'; expected letters, digits, '_', '-' or '.' only");
  }
  if (w.precision != "auto" && w.precision != "fp32" && w.precision != "bf16" &&
      w.precision != "fp16") {
    c.add("precision", "got '" + w.precision + "'; expected auto, fp32, bf16 or fp16");
  }
  if (w.channels_last != "auto" && w.channels_last != "on" && w.channels_last != "off") {
    c.add("channels_last", "got '" + w.channels_last + "'; expected auto, on or off");
  }
  c.fraction("defaults.accuracy_target", w.defaults.accuracy_target);
  c.positive("defaults.batch_size", w.defaults.batch_size);
  c.positive("defaults.image_size", w.defaults.image_size);

  const auto& s = w.search;
  if (s.strategy != "greedy" && s.strategy != "all" && s.strategy != "manual") {
    c.add("search.strategy", "got '" + s.strategy + "'; expected greedy, all or manual");
  }
  if (s.strategy == "manual" && s.groups.empty()) {
    c.add("search.groups",
          "missing; strategy 'manual' needs the group numbers to share "
          "(as `gemel inspect` lists them)");
  }
  for (const int g : s.groups) {
    if (g < 0) c.add("search.groups", "got " + show(g) + "; expected group numbers >= 0");
  }
  c.positive("search.epochs_per_trial", s.epochs_per_trial);
  if (s.max_trials < 0)
    c.add("search.max_trials", "got " + show(s.max_trials) + "; expected >= 0 (0: no limit)");
  if (s.seconds_per_trial < 0) {
    c.add("search.seconds_per_trial",
          "got " + show(s.seconds_per_trial) + "; expected >= 0 (0: no limit)");
  }
  if (!(s.drop_after_epochs >= 0)) {
    c.add("search.drop_after_epochs", "got " + show(s.drop_after_epochs) +
                                          "; expected >= 0 (epochs before a task may be dropped)");
  }
  if (!(s.time_budget >= 0)) {
    c.add("search.time_budget",
          "got " + show(s.time_budget) + "; expected seconds >= 0 (0: no budget)");
  }
  if (!(s.recovery_fraction >= 0 && s.recovery_fraction <= 1)) {
    c.add("search.recovery_fraction",
          "got " + show(s.recovery_fraction) + "; expected a fraction in [0, 1] (0: no recovery)");
  }
  if (!(s.lr > 0)) c.add("search.lr", "got " + show(s.lr) + "; expected a positive learning rate");
  if (s.momentum < 0 || s.momentum >= 1)
    c.add("search.momentum", "got " + show(s.momentum) + "; expected a value in [0, 1)");
  if (s.weight_decay < 0)
    c.add("search.weight_decay", "got " + show(s.weight_decay) + "; expected >= 0");

  if (w.tasks.empty()) {
    c.add("tasks",
          "missing or empty; expected a list of tasks, each with name, arch and num_classes");
    return;
  }
  std::map<std::string, std::string> seen;  // task name -> key of its first use
  for (std::size_t i = 0; i < w.tasks.size(); ++i) {
    const auto path = "tasks[" + std::to_string(i) + "]";
    const auto& t = w.tasks[i];
    checkTask(c, t, path, options);
    if (t.name.empty()) continue;
    const auto [it, inserted] = seen.emplace(t.name, path);
    if (!inserted) {
      c.add(path + ".name", "duplicate task name '" + t.name + "' (first used by " + it->second +
                                " at " + w.where(it->second + ".name") +
                                "); task names must be unique");
    }
  }
}

}  // namespace gemel::config
