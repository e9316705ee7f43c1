#include "gemel/config/dump.h"

#include <yaml-cpp/yaml.h>

namespace gemel::config {
namespace {

void emitNumbers(YAML::Emitter& out, const std::vector<double>& values) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const double v : values) out << v;
  out << YAML::EndSeq;
}

}  // namespace

std::string dumpWorkload(const Workload& w) {
  YAML::Emitter out;
  out.SetDoublePrecision(10);  // 0.95, not 0.94999999999999996
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << w.name;
  out << YAML::Key << "datasets_dir" << YAML::Value << w.datasets_dir;
  out << YAML::Key << "defaults" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "accuracy_target" << YAML::Value << w.defaults.accuracy_target;
  out << YAML::Key << "batch_size" << YAML::Value << w.defaults.batch_size;
  if (w.defaults.image_size_set)
    out << YAML::Key << "image_size" << YAML::Value << w.defaults.image_size;
  out << YAML::EndMap;

  const auto& s = w.search;
  out << YAML::Key << "precision" << YAML::Value << w.precision;
  out << YAML::Key << "channels_last" << YAML::Value << w.channels_last;
  out << YAML::Key << "search" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "strategy" << YAML::Value << s.strategy;
  out << YAML::Key << "epochs_per_trial" << YAML::Value << s.epochs_per_trial;
  out << YAML::Key << "seconds_per_trial" << YAML::Value << s.seconds_per_trial;
  out << YAML::Key << "lr" << YAML::Value << s.lr;
  out << YAML::Key << "momentum" << YAML::Value << s.momentum;
  out << YAML::Key << "weight_decay" << YAML::Value << s.weight_decay;
  out << YAML::Key << "seed" << YAML::Value << s.seed;
  out << YAML::Key << "drop_after_epochs" << YAML::Value << s.drop_after_epochs;
  out << YAML::Key << "recovery_fraction" << YAML::Value << s.recovery_fraction;
  if (s.time_budget > 0) out << YAML::Key << "time_budget" << YAML::Value << s.time_budget;
  if (s.max_trials > 0) out << YAML::Key << "max_trials" << YAML::Value << s.max_trials;
  if (!s.groups.empty()) {
    out << YAML::Key << "groups" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const int g : s.groups) out << g;
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;

  out << YAML::Key << "tasks" << YAML::Value << YAML::BeginSeq;
  for (const auto& t : w.tasks) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << t.name;
    out << YAML::Key << "arch" << YAML::Value << t.arch;
    out << YAML::Key << "kind" << YAML::Value << toString(t.kind);
    if (t.num_classes > 0) out << YAML::Key << "num_classes" << YAML::Value << t.num_classes;
    if (!t.weights.empty()) out << YAML::Key << "weights" << YAML::Value << t.weights;
    if (!t.weights_backbone.empty())
      out << YAML::Key << "weights_backbone" << YAML::Value << t.weights_backbone;
    if (t.skip_head) out << YAML::Key << "skip_head" << YAML::Value << true;
    out << YAML::Key << "dataset" << YAML::Value << t.dataset;
    if (t.unmerged_acc) out << YAML::Key << "unmerged_acc" << YAML::Value << *t.unmerged_acc;
    out << YAML::Key << "accuracy_target" << YAML::Value << t.accuracy_target;
    out << YAML::Key << "batch_size" << YAML::Value << t.batch_size;
    // (a classifier's size is its dataset's unless the workload gave one)
    if (t.image_size_set || t.kind == TaskKind::kDetection)
      out << YAML::Key << "image_size" << YAML::Value << t.image_size;
    if (!t.metric.empty()) out << YAML::Key << "metric" << YAML::Value << t.metric;
    if (t.frozen_batchnorm)
      out << YAML::Key << "frozen_batchnorm" << YAML::Value << *t.frozen_batchnorm;
    if (t.trainable_backbone_layers)
      out << YAML::Key << "trainable_backbone_layers" << YAML::Value
          << *t.trainable_backbone_layers;
    if (!t.sampling.empty()) {
      out << YAML::Key << "sampling" << YAML::Value << YAML::BeginMap;
      for (const auto& [key, value] : t.sampling) out << YAML::Key << key << YAML::Value << value;
      out << YAML::EndMap;
    }
    out << YAML::Key << "transforms" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "mean" << YAML::Value;
    emitNumbers(out, t.transforms.mean);
    out << YAML::Key << "std" << YAML::Value;
    emitNumbers(out, t.transforms.std);
    out << YAML::Key << "hflip" << YAML::Value << t.transforms.hflip;
    out << YAML::Key << "crop_padding" << YAML::Value << t.transforms.crop_padding;
    out << YAML::Key << "scale_jitter" << YAML::Value << t.transforms.scale_jitter;
    out << YAML::EndMap;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace gemel::config
