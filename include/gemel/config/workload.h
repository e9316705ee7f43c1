#pragma once
// The workload schema: what a user writes in a workload YAML file, after defaults are applied
// and paths are resolved. Plain data; parsing lives in parser.h, checks in validator.h.
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace gemel::config {

enum class TaskKind { kClassification, kDetection };
std::string toString(TaskKind kind);

// Per-task input pipeline. Images are stored as uint8 and normalised on the device.
struct Transforms {
  std::vector<double> mean{0.485, 0.456, 0.406};
  std::vector<double> std{0.229, 0.224, 0.225};
  bool hflip = true;     // random horizontal flip while training
  int crop_padding = 0;  // random crop after zero padding by this many pixels (0: off)
  // Detection: random scale in [1 - j, 1 + j] and shift within +-j/2 of the input while training
  double scale_jitter = 0.2;
};

struct TaskConfig {
  std::string name;
  std::string arch;
  TaskKind kind = TaskKind::kClassification;
  int num_classes = 0;
  std::string weights;  // absolute path, or empty: train from scratch
  // A Faster R-CNN's backbone from a classifier's state_dict (absolute path, or empty), as
  // torchvision's weights_backbone: the body starts from it, the rest from the default init.
  std::string weights_backbone;
  bool skip_head = false;  // load weights without the final classifier layer
  std::string dataset;     // absolute path of the task's HDF5 dataset
  bool dataset_explicit = false;
  std::optional<double> unmerged_acc;
  double accuracy_target = 0.95;  // fraction of unmerged accuracy to keep
  int batch_size = 32;
  int image_size = 224;
  // Whether the workload gives image_size (the task or defaults): a classifier takes its
  // dataset's images as they are, so a given size must agree with them (train/task.cpp).
  bool image_size_set = false;
  Transforms transforms;
  // The score: top1 (classification); map50 (mAP@0.5, the detection default) or map
  // (COCO mAP@[.5:.95]). Empty: the kind's default.
  std::string metric;
  // The workload's precision (auto | fp32 | bf16 | fp16) and channels_last (auto | on | off),
  // resolved for the device at training time (train/precision.h).
  std::string precision = "auto";
  std::string channels_last = "auto";
  // fasterrcnn_resnet50_fpn fine-tuning as torchvision does it from pretrained weights
  // (models::freezeSpec): the body's BatchNorm as FrozenBatchNorm2d (unset: with
  // weights_backbone, or when the weights file has FrozenBatchNorm2d's layout, no
  // num_batches_tracked), and how many of the body's
  // stages train, from layer4 down (unset: 3 with frozen BatchNorm, else all 5).
  std::optional<bool> frozen_batchnorm;
  std::optional<int> trainable_backbone_layers;
  // A Faster R-CNN's training-time sampling, as torchvision's FasterRCNN keyword arguments of
  // the same names (rpn_batch_size_per_image, rpn_positive_fraction, rpn_pre_nms_top_n_train,
  // rpn_post_nms_top_n_train, box_batch_size_per_image, box_positive_fraction): fewer anchors,
  // proposals and RoIs per image make a step cheaper. Only the keys given; the model's
  // defaults (torchvision's) for the rest. Evaluation is not affected.
  std::map<std::string, double> sampling;
};

// The keys a task's `sampling` takes, and whether each is a count (else a fraction in (0, 1]).
const std::vector<std::pair<std::string, bool>>& samplingKeys();

struct SearchConfig {
  std::string strategy = "greedy";  // greedy | all | manual
  int epochs_per_trial = 4;
  double seconds_per_trial = 0;  // 0: no time limit
  double lr = 0.01;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  int seed = 0;
  int max_trials = 0;  // stop the search after this many trials (0: when no group is left)
  // Wall seconds for the whole search (0: none). With a budget, no trial starts after it is
  // spent, a trial's time is capped by what is left, and once every group has had its try the
  // groups not yet shared by all their models get a second try (smaller step, longer budget).
  double time_budget = 0;
  // Early stop of a trial: after this many epochs, a task whose projected score (its best lift
  // per epoch so far, carried over the budget left) falls short of its target is dropped.
  double drop_after_epochs = 0.5;
  // Partial confirmation: when a task is below target in the check, the partial plan's models
  // retrain jointly for up to this fraction of a trial's budget.
  double recovery_fraction = 0.25;
  std::vector<int> groups;  // manual: group indices as `gemel inspect` numbers them
};

struct Defaults {
  double accuracy_target = 0.95;
  int batch_size = 32;
  int image_size = 224;
  bool image_size_set = false;  // given in the file
};

// Where each key came from, for error messages: "tasks[1].arch" -> line (1-based).
using SourceLines = std::map<std::string, int>;

struct Workload {
  std::string name;
  std::string source_file;   // the YAML file as the user named it
  std::string base_dir;      // its directory: relative paths resolve against it
  std::string datasets_dir;  // absolute
  Defaults defaults;
  SearchConfig search;
  // auto: bf16 where the device computes it natively (CUDA from compute capability 8, CPUs
  // with AVX512-BF16 or AMX), else fp32.
  std::string precision = "auto";  // every task's; see TaskConfig
  std::string channels_last = "auto";
  std::vector<TaskConfig> tasks;
  SourceLines lines;

  // "file:line" for a key path, or just the file when the key is absent from it.
  std::string where(const std::string& key) const;
  const TaskConfig* findTask(const std::string& name) const;
};

// The default dataset file name: the task name with its final "_<arch>" replaced by "_CL"
// (classification) or "_OD" (detection), plus ".h5" — the convention of the original tool.
std::string defaultDatasetName(const std::string& task_name, const std::string& arch,
                               TaskKind kind);

}  // namespace gemel::config
