// gemel bench: joint-training throughput of a set of models on synthetic data, through the
// training step gemel trains with (TrainStep): every shareable layer tied (one tensor, one
// optimizer entry), uint8 images prepared on the device (augmentation and normalisation;
// letterbox, jitter and flip for detectors), forward, each task's loss, one backward, the
// multi-tensor SGD step; in graph modes the forward and backward replayed as a CUDA graph. Each
// mode (fp32, bf16 autocast, each with contiguous or channels_last conv weights and inputs) is
// timed in turn, with the process's peak memory after it and each model's forward latency at
// batch 1. tests/bench/compare.sh runs it beside the same workload in Python
// (tests/bench/py_joint.py); tests/bench/yolo_bench.sh beside PyTorch-YOLOv3's own training step.
#include <torch/torch.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "gemel/cli/commands.h"
#include "gemel/cli/options.h"
#include "gemel/config/parser.h"
#include "gemel/config/workload.h"
#include "gemel/core/error.h"
#include "gemel/core/json.h"
#include "gemel/data/sources.h"
#include "gemel/data/transforms.h"
#include "gemel/merge/catalog.h"
#include "gemel/merge/model_layers.h"
#include "gemel/merge/tying.h"
#include "gemel/models/archs.h"
#include "gemel/models/darknet_cfg.h"
#include "gemel/models/zoo.h"
#include "gemel/train/joint_trainer.h"
#include "gemel/train/objective.h"
#include "gemel/train/precision.h"
#include "gemel/train/step.h"
#include "gemel/train/task.h"

namespace gemel::cli {
namespace {

struct Mode {
  train::Precision precision = train::Precision::kFp32;
  bool channels_last = false;
  bool graph = false;  // CUDA: the step's forward and backward replayed as one CUDA graph
  std::string name() const {
    return train::toString(precision) + (channels_last ? " channels_last" : "") +
           (graph ? " cuda graph" : "");
  }
};

// Noise images with 1-4 boxes each (detection) or random labels, the same every step.
data::Batch syntheticBatch(const config::TaskConfig& t) {
  const int b = t.batch_size, s = t.image_size;
  data::Batch batch;
  batch.images = torch::randint(0, 256, {b, s, s, 3}, torch::kUInt8);
  batch.labels = torch::randint(0, t.num_classes, {b}, torch::kLong);
  for (int i = 0; i < b; ++i) {
    std::vector<data::Box> boxes;
    for (int k = 0; k < 1 + i % 4; ++k) {
      const float w = s * (0.1f + 0.05f * k), x = s * (0.1f + 0.17f * k),
                  y = s * (0.2f + 0.1f * (i % 5));
      boxes.push_back({float((i + k) % t.num_classes), x, y, x + w, y + w * 1.3f});
    }
    batch.boxes.push_back(std::move(boxes));
  }
  return batch;
}

double peakRssBytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) * 1024;  // Linux reports KiB
}

struct ModeResult {
  double images_per_s = 0, seconds = 0, loss = 0, peak_rss = 0;
  std::vector<double> latency_ms;  // per model, median forward at batch 1
};

// The median of 10 timed forward passes (after 2 untimed), eval mode, no grad.
double medianForwardMs(models::Model& model, const torch::Tensor& x, const torch::Device& device,
                       train::Precision precision) {
  torch::NoGradGuard no_grad;
  model.train(false);
  std::vector<double> ms;
  for (int k = 0; k < 12; ++k) {
    const auto t = std::chrono::steady_clock::now();
    {
      train::AutocastScope autocast(device, precision);
      model.forward(x);
      if (device.is_cuda()) torch::cuda::synchronize(device.index());
    }
    if (k >= 2)
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// The tasks' models on the device, in train mode, every shareable layer tied across every
// model that has it; `shared` (when given) gets each tied layer's "task:module" names.
std::vector<std::unique_ptr<models::Model>> tiedModels(
    const std::vector<config::TaskConfig>& tasks, const torch::Device& device,
    std::vector<std::vector<std::string>>* shared) {
  std::vector<std::unique_ptr<models::Model>> owned;
  std::vector<models::Model*> models;
  std::vector<merge::CatalogModel> described;
  for (const auto& t : tasks) {
    owned.push_back(models::buildTaskModel(t));
    owned.back()->to(device);
    owned.back()->train(true);
    models.push_back(owned.back().get());
    described.push_back(merge::describeModel(t.name, *owned.back()));
  }
  const merge::LayerCatalog catalog(std::move(described));
  merge::SharingPlan plan;
  for (const auto& g : catalog.groups()) {
    for (std::size_t i = 0; i < g.instances.size(); ++i)
      plan.add({g.id, {static_cast<int>(i)}, g.models});
  }
  merge::materialize(models, catalog, plan, merge::takeSnapshot(models));
  if (shared) {
    shared->clear();
    for (const auto& [key, members] : plan.instances()) {
      const auto& inst = catalog.groups()[key.first].instances[key.second];
      std::vector<std::string> names;
      for (const auto& ref : inst.members) {
        if (members.count(ref.model))
          names.push_back(merge::memberName(catalog, ref.model, ref.module));
      }
      shared->push_back(std::move(names));
    }
  }
  return owned;
}

// A task of the bench: its model, fed the same synthetic batch every step, augmented with the
// draws gemel's training takes (keyed by task and step), through the training step of
// train and merge (TrainStep).
class SyntheticTask final : public train::Trainable {
 public:
  SyntheticTask(models::Model& model, const config::TaskConfig& task, int index, const Mode& mode,
                const torch::Device& device)
      : model_(model),
        objective_(train::makeObjective(task)),
        batch_(syntheticBatch(task)),
        index_(index),
        mode_(mode),
        device_(device) {}
  data::Batch nextTrainBatch() override { return batch_; }
  torch::Tensor trainInput(data::Batch& batch) override {
    auto draws = data::Draws::forStep(0, index_, step_++);
    return input(batch, &draws);
  }
  torch::Tensor trainLossOn(const torch::Tensor& x, const data::Batch& prepared) override {
    models::ModelOutput out;
    {
      train::AutocastScope autocast(device_, mode_.precision);
      out = model_.forward(x, model_.takesTargets() ? &prepared.box_targets : nullptr);
    }
    if (out.logits.defined()) out.logits = out.logits.to(torch::kFloat);
    return objective_->loss(out, prepared);
  }
  // The eval-mode input of one image (latency).
  torch::Tensor oneImage() {
    data::Batch one = batch_;
    one.images = one.images.narrow(0, 0, 1);
    one.labels = one.labels.narrow(0, 0, 1);
    one.boxes.resize(1);
    return input(one, nullptr);
  }

 private:
  torch::Tensor input(data::Batch& batch, data::Draws* draws) {
    auto x = objective_->prepare(batch, draws, device_);
    return mode_.channels_last ? x.contiguous(torch::MemoryFormat::ChannelsLast) : x;
  }
  models::Model& model_;
  std::shared_ptr<const train::Objective> objective_;
  data::Batch batch_;
  int index_;
  Mode mode_;
  torch::Device device_;
  int64_t step_ = 0;
};

ModeResult timeMode(const std::vector<config::TaskConfig>& tasks, const Mode& mode, int steps,
                    const torch::Device& device, std::vector<std::vector<std::string>>* shared) {
  torch::manual_seed(0);
  const auto owned = tiedModels(tasks, device, shared);
  std::vector<models::Model*> models;
  std::vector<std::unique_ptr<SyntheticTask>> synthetic;
  std::vector<train::Trainable*> trainables;
  int64_t images = 0;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    models.push_back(owned[i].get());
    synthetic.push_back(
        std::make_unique<SyntheticTask>(*owned[i], tasks[i], static_cast<int>(i), mode, device));
    trainables.push_back(synthetic.back().get());
    images += tasks[i].batch_size;
  }
  train::StepOptions so;
  so.sgd.lr = 1e-3;
  so.sgd.momentum = 0.9;
  so.sgd.weight_decay = 5e-4;
  so.channels_last = mode.channels_last;
  so.mode = mode.graph ? train::StepMode::kGraphed : train::StepMode::kEager;
  so.label = "bench " + mode.name();
  train::TrainStep step(trainables, train::uniqueParameters(models), so, train::RankSync::local());
  const std::vector<bool> active(tasks.size(), true);
  const std::vector<double> weights(tasks.size(), 1.0);
  auto once = [&] {
    const auto total = step.forward(active, weights);
    step.apply(total);
    return total;
  };
  // Untimed: the warm-up steps, and in graph mode those the step takes eagerly before its
  // capture, and the capture itself.
  const int warmups = mode.graph ? train::TrainStep::kGraphWarmups + 1 : 2;
  for (int i = 0; i < warmups; ++i) once().item<double>();
  step.takePending();
  ModeResult r;
  const auto t0 = std::chrono::steady_clock::now();
  torch::Tensor last;
  for (int i = 0; i < steps; ++i) last = once();
  r.loss = last.item<double>();  // waits for the device
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.images_per_s = double(steps) * double(images) / r.seconds;
  GEMEL_ASSERT(!mode.graph || step.graphedSteps() >= steps,
               "bench {}: {} of {} timed steps were replayed as a CUDA graph", mode.name(),
               step.graphedSteps(), steps);
  // Forward latency at batch 1, eval mode.
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    r.latency_ms.push_back(
        medianForwardMs(*models[i], synthetic[i]->oneImage(), device, mode.precision));
  }
  r.peak_rss = peakRssBytes();
  return r;
}

// The models to time: a workload's tasks (--config) or one per --arch entry.
std::vector<config::TaskConfig> benchTasks(const po::variables_map& vm) {
  std::vector<config::TaskConfig> tasks;
  if (vm.count("config")) {
    GEMEL_THROW_IF_NOT(!vm.count("arch"), UsageError, "give --arch or --config, not both");
    config::LoadOptions lo;
    lo.require_datasets = false;
    auto w = config::loadWorkload(vm["config"].as<std::string>(), lo);
    for (auto t : w.tasks) {
      t.weights.clear();  // synthetic data: the weights do not matter
      tasks.push_back(t);
    }
  } else {
    const auto archs =
        data::splitList(vm.count("arch") ? vm["arch"].as<std::string>() : "yolov3-tiny");
    for (std::size_t i = 0; i < archs.size(); ++i) {
      config::TaskConfig t;
      t.name = format("m{}_{}", i, archs[i]);
      t.arch = archs[i];
      t.num_classes = vm["classes"].as<int>();
      t.image_size = vm["size"].as<int>();
      t.batch_size = vm["batch"].as<int>();
      if (models::isDarknetArch(t.arch)) {
        t.kind = config::TaskKind::kDetection;
        t.transforms.mean = {0, 0, 0};
        t.transforms.std = {1, 1, 1};
      }
      if (models::isTorchvisionDetectorArch(t.arch)) {
        t.kind = config::TaskKind::kDetection;
        if (models::isSsdArch(t.arch)) {
          t.transforms.mean = models::ssdDefaultMean(t.arch);
          t.transforms.std = models::ssdDefaultStd(t.arch);
        }
      }
      tasks.push_back(t);
    }
  }
  for (const auto& t : tasks) {
    const bool rcnn = models::isTorchvisionDetectorArch(t.arch);
    GEMEL_THROW_IF_NOT(
        rcnn || (t.arch != models::kTorchScriptArch && models::isZooArch(t.arch)), UsageError,
        "--arch: '{}' is not a zoo, Darknet or Faster R-CNN arch; expected one of: {}", t.arch,
        models::knownArchList());
    GEMEL_THROW_IF_NOT(t.batch_size > 0 && t.image_size >= 16, UsageError,
                       "--batch must be positive and --size at least 16");
    GEMEL_THROW_IF_NOT(!models::isDarknetArch(t.arch) || t.image_size % 32 == 0, UsageError,
                       "--size {}: {} needs a multiple of 32", t.image_size, t.arch);
  }
  return tasks;
}

// --modes: fp32 | bf16 (| fp16), each with -cl for channels_last; auto: fp32, and bf16 only
// where the device computes it natively (emulated bf16 is about 30x slower on a CPU without
// AVX512-BF16 or AMX, and no one would train in it).
std::vector<Mode> benchModes(const po::variables_map& vm, const torch::Device& device,
                             const std::vector<config::TaskConfig>& tasks) {
  // CUDA graphs need static shapes and no host work inside the step: classifiers (a
  // detector's targets change in number from batch to batch), without dropout's generator.
  bool graphable = device.is_cuda();
  for (const auto& t : tasks)
    graphable =
        graphable && t.kind == config::TaskKind::kClassification && t.arch.rfind("resnet", 0) == 0;
  std::string list = vm["modes"].as<std::string>();
  if (list == "auto") {
    list = "fp32,fp32-cl";
    if (train::resolvePrecision("auto", device) == train::Precision::kBf16) list += ",bf16,bf16-cl";
    if (graphable) list += ",fp32-graph,fp32-cl-graph";
    if (graphable && train::resolvePrecision("auto", device) == train::Precision::kBf16)
      list += ",bf16-graph";
  }
  std::vector<Mode> modes;
  for (auto m : data::splitList(list)) {
    Mode mode;
    auto strip = [&m](const std::string& suffix) {
      const bool has = m.size() > suffix.size() &&
                       m.compare(m.size() - suffix.size(), suffix.size(), suffix) == 0;
      if (has) m.resize(m.size() - suffix.size());
      return has;
    };
    mode.graph = strip("-graph");
    mode.channels_last = strip("-cl");
    mode.precision = train::parsePrecision(m);
    GEMEL_THROW_IF_NOT(!mode.graph || graphable, UsageError,
                       "--modes: -graph (the step as one CUDA graph) needs a CUDA device and "
                       "ResNet classifiers only (static shapes, no dropout)");
    GEMEL_THROW_IF_NOT(!mode.graph || mode.precision != train::Precision::kFp16, UsageError,
                       "--modes: -graph is timed in fp32 and bf16 (fp16 trains with a gradient "
                       "scaler, which reads the host)");
    modes.push_back(mode);
  }
  return modes;
}

po::options_description benchOptions() {
  po::options_description desc("bench options");
  desc.add_options()(
      "arch", po::value<std::string>(),
      "models, comma-separated (e.g. resnet18,resnet18,resnet34,resnet50, yolov3-tiny or "
      "fasterrcnn:resnet18); default yolov3-tiny")(
      "config", po::value<std::string>(),
      "a workload YAML: its tasks' archs, classes, sizes and batches")(
      "size", po::value<int>()->default_value(416), "input side in pixels (with --arch)")(
      "batch", po::value<int>()->default_value(8), "images per step per model (with --arch)")(
      "classes", po::value<int>()->default_value(80), "classes per model (with --arch)")(
      "steps", po::value<int>()->default_value(10),
      "timed steps per mode (after untimed warm-up steps)")(
      "modes", po::value<std::string>()->default_value("auto"),
      "modes timed in turn: fp32, bf16 (autocast), -cl for channels_last, -graph for the step as "
      "one CUDA graph (fp32, ResNets); auto: fp32 and fp32-cl, bf16 and bf16-cl where bf16 is "
      "native, and fp32-graph and fp32-cl-graph on CUDA")("json", po::bool_switch(), "print JSON");
  addThreadsOption(desc);
  return desc;
}

}  // namespace

int runBench(const Args& args, const dist::World& world) {
  const auto desc = benchOptions();
  po::variables_map vm;
  if (!parseCommandLine("bench",
                        "(--arch A[,B...] [--size S] [--batch B] | --config W.yaml) [--steps N]",
                        desc, args, vm))
    return 0;
  const bool json = vm["json"].as<bool>();
  const auto threads = setupThreads(vm, world, json);
  const int steps = vm["steps"].as<int>();
  GEMEL_THROW_IF_NOT(steps > 0, UsageError, "--steps must be positive");
  const auto tasks = benchTasks(vm);
  const auto device = train::defaultDevice();
  const auto modes = benchModes(vm, device, tasks);
  for (const auto& m : modes) {
    GEMEL_THROW_IF_NOT(m.precision != train::Precision::kFp16 || device.is_cuda(), UsageError,
                       "--modes: fp16 needs a CUDA device; on the CPU use bf16");
  }
  std::string names;
  for (const auto& t : tasks) names += (names.empty() ? "" : ",") + t.arch;
  JsonWriter j;
  j.beginObject().key("models").value(names).key("device").value(device.str());
  j.key("threads").value(threads.threads).key("steps").value(steps);
  j.key("batch").beginArray();
  for (const auto& t : tasks) j.value(t.batch_size);
  j.endArray().key("size").beginArray();
  for (const auto& t : tasks) j.value(t.image_size);
  j.endArray().key("modes").beginArray();
  if (!json) {
    std::printf("gemel bench: %s on %s, %d threads; joint step, every shareable layer tied\n",
                names.c_str(), device.str().c_str(), threads.threads);
    std::printf("  %-20s %10s %10s %12s  %s\n", "mode", "images/s", "loss", "peak RSS",
                "forward ms at batch 1, per model");
  }
  double best = 0;
  std::string best_mode;
  std::vector<std::vector<std::string>> shared;
  for (const auto& mode : modes) {
    const auto r = timeMode(tasks, mode, steps, device, shared.empty() ? &shared : nullptr);
    if (r.images_per_s > best) best = r.images_per_s, best_mode = mode.name();
    j.beginObject().key("mode").value(mode.name()).key("images_per_s").value(r.images_per_s);
    j.key("seconds")
        .value(r.seconds)
        .key("loss")
        .value(r.loss)
        .key("peak_rss_bytes")
        .value(r.peak_rss);
    j.key("latency_ms").beginArray();
    for (const double v : r.latency_ms) j.value(v);
    j.endArray().endObject();
    if (!json) {
      std::string lat;
      for (const double v : r.latency_ms) lat += format("{} ", std::round(v * 10) / 10);
      std::printf("  %-20s %10.2f %10.3f %9.0f MiB  %s\n", mode.name().c_str(), r.images_per_s,
                  r.loss, r.peak_rss / (1 << 20), lat.c_str());
      std::fflush(stdout);
    }
  }
  j.endArray().key("best_mode").value(best_mode).key("images_per_s").value(best);
  j.key("shared").beginArray();
  for (const auto& inst : shared) {
    j.beginArray();
    for (const auto& m : inst) j.value(m);
    j.endArray();
  }
  j.endArray().endObject();
  if (json) {
    std::printf("%s\n", j.str().c_str());
  } else {
    std::printf(
        "  best: %s, %.2f images/s; %zu layers shared (peak RSS is the process's, so it "
        "only grows from mode to mode)\n",
        best_mode.c_str(), best, shared.size());
  }
  return 0;
}

}  // namespace gemel::cli
