// gemel train / merge / eval / export: from a workload to merged models and back to files
// PyTorch loads.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <thread>

#include "gemel/cli/commands.h"
#include "gemel/cli/options.h"
#include "gemel/config/dump.h"
#include "gemel/config/parser.h"
#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "gemel/core/format.h"
#include "gemel/core/json.h"
#include "gemel/core/log.h"
#include "gemel/dist/watchdog.h"
#include "gemel/dist/world.h"
#include "gemel/io/results.h"
#include "gemel/merge/load.h"
#include "gemel/merge/model_layers.h"
#include "gemel/merge/search.h"
#include "gemel/merge/tying.h"
#include "gemel/models/archs.h"
#include "gemel/models/darknet_cfg.h"
#include "gemel/models/zoo.h"
#include "gemel/train/detection.h"
#include "gemel/train/joint_trainer.h"
#include "gemel/train/task.h"

namespace gemel::cli {
namespace {

namespace fs = std::filesystem;

config::Workload loadForTraining(const po::variables_map& vm) {
  config::LoadOptions options;
  options.require_datasets = true;
  if (vm.count("datasets-dir")) options.datasets_dir = vm["datasets-dir"].as<std::string>();
  const auto p = vm.count("precision") ? vm["precision"].as<std::string>() : "";
  GEMEL_THROW_IF_NOT(p.empty() || p == "auto" || p == "fp32" || p == "bf16" || p == "fp16",
                     UsageError, "--precision '{}': expected auto, fp32, bf16 or fp16", p);
  auto w = config::loadWorkload(vm["config"].as<std::string>(), options);
  if (!p.empty()) {
    w.precision = p;
    for (auto& t : w.tasks) t.precision = p;
  }
  const auto device = train::defaultDevice();
  const auto precision = train::resolvePrecision(w.precision, device);
  log::info("train", "forward passes in {}{} on {} (precision: {}, channels_last: {})",
            train::toString(precision),
            train::resolveChannelsLast(w.channels_last, precision) ? ", channels_last" : "",
            device.str(), w.precision, w.channels_last);
  for (const auto& t : w.tasks) {
    if (models::isTorchvisionDetectorArch(t.arch) && t.precision == "auto")
      log::info("train", "task '{}': forward passes in fp32 (a {}'s precision: auto)", t.name,
                models::isSsdArch(t.arch) ? "SSD" : "Faster R-CNN");
  }
  return w;
}

// One process on a machine with several GPUs trains on the first only: said once, with the
// way to use them all.
void noteIdleGpus(const dist::World& world, const torch::Device& device) {
  if (world.size() > 1 || !device.is_cuda()) return;
  const auto gpus = torch::cuda::device_count();
  if (gpus > 1)
    log::warn("train",
              "this machine has {} GPUs and this single process uses {} only; to train on all "
              "of them, run it under MPI with one rank per GPU: launch/gemel-mpirun -np {} ...",
              gpus, device.str(), gpus);
}

void addWorkloadOptions(po::options_description& desc) {
  desc.add_options()("config", po::value<std::string>()->required(), "workload YAML file")(
      "datasets-dir", po::value<std::string>(), "override the workload's datasets_dir")(
      "precision", po::value<std::string>(),
      "override the workload's precision: auto (bf16 where the device computes it natively), "
      "fp32, bf16, fp16 (CUDA)");
  addThreadsOption(desc);
}

// gemel train holds out every kHoldOutEvery-th training example to choose its epoch on.
constexpr int kHoldOutEvery = 10;
// A run that diverges, or a classifier's that ends no better than untrained, starts again from the
// task's initial weights at a quarter of the step, at most this many times: --lr (or
// search.lr) is where the step starts, and its ceiling.
constexpr int kTrainBackoffs = 3;
// A classifier's run "learned" when its held-out score closed at least this share of the gap
// between the untrained model's score and a perfect one (a stalled run stays at its start:
// chance). Detectors are not held to it: their mAP starts at 0 and rises slowly for epochs.
constexpr double kMinLearned = 0.05;

// Trains one task for the options' budget, choosing its weights on its held-out data. A loss
// that is not finite, or a classifier's run that did not learn, restarts from the initial
// weights at lr / 4 (up to kTrainBackoffs times) instead of failing; if no run learned, the
// best one is kept.
train::TrialResult trainWithBackoff(train::TaskRuntime& rt, train::TrainOptions o,
                                    bool classifier) {
  const auto initial = rt.model().stateDictCopy();
  const double untrained =
      classifier ? rt.objective().score(rt.validate(train::EvalSplit::kHeldOut)) : 0.0;
  const double learned =
      classifier ? untrained + kMinLearned * std::max(0.0, 1.0 - untrained) : -1.0;
  // A target above 100%: never met, so the whole budget is trained.
  train::TrialTask task{rt.index(), rt.name(), 2.0, &rt, 1.0, nullptr};
  task.validate_on = train::EvalSplit::kHeldOut;
  std::optional<std::pair<train::TrialResult, models::StateDict>> best;  // of the stalled runs
  for (int backoff = 0;; ++backoff) {
    auto result = train::JointTrainer({task}, o).run();
    if (!result.nan_loss && result.scores[0] >= learned) return result;
    if (!result.nan_loss && (!best || result.scores[0] > best->first.scores[0]))
      best.emplace(result, rt.model().stateDictCopy());
    const auto why = result.nan_loss
                         ? std::string("the loss diverged (not finite)")
                         : format("it did not learn (held-out {} against {} untrained)",
                                  formatFixed(result.scores[0], 4), formatFixed(untrained, 4));
    if (backoff >= kTrainBackoffs) {
      GEMEL_THROW_IF_NOT(best.has_value(), InputError,
                         "task '{}': the loss diverged (not finite) at every step size down to "
                         "{}; check the dataset and the transforms' mean and std",
                         rt.name(), o.lr);
      log::warn("train",
                "task '{}': {} at every step size down to {}; keeping its best run (held-out {})",
                rt.name(), why, o.lr, formatFixed(best->first.scores[0], 4));
      torch::NoGradGuard no_grad;
      rt.model().loadStateDict(best->second, {false, rt.name()});
      return best->first;
    }
    log::warn("train", "task '{}': {} at lr {}; starting again at lr {}", rt.name(), why, o.lr,
              o.lr / 4);
    o.lr /= 4;
    torch::NoGradGuard no_grad;
    rt.model().loadStateDict(initial, {false, rt.name()});
  }
}

// Before a trained task's weights replace where it started: a detector fine-tuned with frozen
// BatchNorm because of its start (weights_backbone, or weights in FrozenBatchNorm2d's layout)
// keeps it, as the trained weights gemel writes have the counters; and the trained weights hold
// the backbone now.
void keepWhereItStarted(config::TaskConfig& task) {
  if (task.arch == "fasterrcnn_resnet50_fpn" && !task.frozen_batchnorm &&
      models::freezeSpec(
          task, task.weights.empty() ? models::StateDict() : models::readStateDict(task.weights))
          .frozen_batchnorm)
    task.frozen_batchnorm = true;
  task.weights_backbone.clear();
}

// gemel train's starting step: --lr when given; else search.lr (the merge's fine-tuning step)
// for a task that starts from its weights, and kScratchLr for one that starts from scratch or
// from a backbone only (its heads are new: torchvision's detection recipes train those at the
// from-scratch step too).
constexpr double kScratchLr = 0.02;
double trainingStep(const config::TaskConfig& task, const config::SearchConfig& search,
                    const po::variables_map& vm) {
  if (vm.count("lr")) return vm["lr"].as<double>();
  const bool from_weights = !task.weights.empty();
  const double lr = from_weights ? search.lr : kScratchLr;
  log::info("train", "task '{}': starts from {}: lr {}{}", task.name,
            from_weights                     ? "its weights"
            : !task.weights_backbone.empty() ? "a backbone"
                                             : "scratch",
            lr, from_weights ? " (search.lr, the fine-tuning step)" : "");
  return lr;
}

int runTrainCmd(const Args& args, const dist::World& world) {
  po::options_description desc("train options");
  addWorkloadOptions(desc);
  desc.add_options()("out", po::value<std::string>(),
                     "output directory (default: <config dir>/trained)")(
      "epochs", po::value<double>()->default_value(6), "epochs per task")(
      "lr", po::value<double>(),
      "starting step size and ceiling (default: the workload's search.lr for a task that starts "
      "from its weights, 0.02 for one that starts from scratch or a backbone); a run that "
      "diverges or does not learn starts again at a quarter of it");
  po::variables_map vm;
  if (!parseCommandLine("train", "--config FILE [--out DIR] [--epochs N]", desc, args, vm))
    return 0;
  setupThreads(vm, world);
  auto w = loadForTraining(vm);
  const std::string out =
      vm.count("out") ? vm["out"].as<std::string>() : (fs::path(w.base_dir) / "trained").string();
  {
    // Before training: --out, or the directory it will be made in, must be writable.
    auto existing = fs::absolute(out);
    while (!fs::exists(existing) && existing.has_parent_path() &&
           existing != existing.parent_path())
      existing = existing.parent_path();
    requireWritableDirectory(existing.string(), "give --out a writable directory");
  }
  const auto device = train::defaultDevice();
  noteIdleGpus(world, device);
  torch::manual_seed(static_cast<uint64_t>(w.search.seed));
  const auto start = std::chrono::steady_clock::now();
  int arch_width = 12;  // wider for long arch names, not for a darknet cfg's path
  for (const auto& t : w.tasks) {
    if (t.arch.rfind("darknet:", 0) != 0)
      arch_width = std::max(arch_width, static_cast<int>(t.arch.size()));
  }
  std::printf("%-28s %-*s %8s %8s %10s %10s %-6s  %s\n", "task", arch_width, "arch", "epochs",
              "seconds", "held-out", "val score", "metric", "weights");
  for (std::size_t i = 0; i < w.tasks.size(); ++i) {
    auto& task = w.tasks[i];
    const auto t0 = std::chrono::steady_clock::now();
    train::TaskRuntime rt(task, static_cast<int>(i), device, static_cast<uint64_t>(w.search.seed));
    // The epoch is chosen on a tenth of the train split held out from training, not on the
    // val split: the val score, which sets the merge's target, is then not a lucky peak.
    rt.holdOut(kHoldOutEvery);
    auto o = train::TrainOptions::fromSearch(w.search);
    o.lr = trainingStep(task, w.search, vm);
    o.epochs = vm["epochs"].as<double>();
    o.seconds = 0;
    o.early_stop = false;
    o.adaptive = false;
    o.keep_best = true;
    o.warmup_epochs = 1;
    o.cosine_decay = true;
    o.label = "train " + task.name;
    const auto result = trainWithBackoff(rt, o, task.kind == config::TaskKind::kClassification);
    const double held_out = result.scores[0];
    const double acc = rt.score();  // on the val split, with the weights chosen
    keepWhereItStarted(task);
    const auto weights = (fs::path(out) / (task.name + ".pt")).string();
    // Made only once there is something to put in it (checked writable above).
    if (i == 0) fs::create_directories(out);
    rt.model().saveWeightsFile(weights);
    task.weights = fs::absolute(weights).string();
    task.skip_head = false;
    task.unmerged_acc = acc;
    std::printf("%-28s %-*s %8.2f %8.1f %10.4f %10.4f %-6s  %s\n", task.name.c_str(), arch_width,
                task.arch.c_str(), result.epochs,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                held_out, acc, rt.objective().metric().c_str(), weights.c_str());
    std::fflush(stdout);
  }
  const auto yaml = (fs::path(out) / (w.name + ".trained.yaml")).string();
  const auto text = "# Written by gemel train from " + w.source_file +
                    ": the same workload with each task's trained weights and score.\n" +
                    config::dumpWorkload(w);
  writeFileAtomic(yaml, text.data(), text.size());
  std::printf("\nworkload with the trained weights: %s  (%.0f s)\n", yaml.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}

int runMergeCmd(const Args& args, const dist::World& world) {
  po::options_description desc("merge options");
  addWorkloadOptions(desc);
  desc.add_options()("out", po::value<std::string>()->required(), "output directory (results.h5)")(
      "max-trials", po::value<int>()->default_value(0),
      "stop after this many trials (default: the workload's search.max_trials)")(
      "time-budget", po::value<double>()->default_value(0),
      "seconds for the whole search (default: the workload's search.time_budget; 0: none)")(
      "max-steps", po::value<int64_t>()->default_value(0),
      "cap on training steps per trial (0: the workload's budget)")(
      "fixed-steps", po::value<int64_t>()->default_value(0),
      "train every trial exactly this many steps (no early stop): for equivalence checks")(
      "backend", po::value<std::string>()->default_value("auto"),
      "gradient all-reduce between ranks: auto, mpi, nccl or single")(
      "resume", po::bool_switch(),
      "go on from DIR/results.h5 of an interrupted (or finished) merge of the same workload")(
      "parallel-trials", po::bool_switch(),
      "under mpirun: run several trials at once, one per rank, each rank holding every task "
      "(docs/distributed.md)")(
      "trial-ranks", po::value<int>()->default_value(0),
      "with --parallel-trials: the most ranks one trial takes (0: one per task it trains); the "
      "ranks it leaves run the trials the search may try next")(
      "timeout", po::value<double>()->default_value(600),
      "under mpirun: end the job when one MPI call has waited this many seconds (a stopped or "
      "lost rank); 0: wait forever");
  po::variables_map vm;
  if (!parseCommandLine("merge", "--config FILE --out DIR", desc, args, vm)) return 0;
  // The command line first, then the workload: a typo fails before anything is loaded.
  merge::MergeOptions o;
  o.backend = dist::parseBackend(vm["backend"].as<std::string>());
  GEMEL_THROW_IF_NOT(vm["timeout"].as<double>() >= 0, UsageError,
                     "--timeout {}: expected seconds >= 0 (0: no timeout)",
                     vm["timeout"].as<double>());
  setupThreads(vm, world);
  const auto w = loadForTraining(vm);
  o.out_dir = vm["out"].as<std::string>();
  o.device = train::defaultDevice(world.localRank());
  noteIdleGpus(world, o.device);
  o.max_trials = vm["max-trials"].as<int>() > 0 ? vm["max-trials"].as<int>() : w.search.max_trials;
  GEMEL_THROW_IF_NOT(vm["time-budget"].as<double>() >= 0, UsageError,
                     "--time-budget {}: expected seconds >= 0 (0: the workload's)",
                     vm["time-budget"].as<double>());
  o.time_budget =
      vm["time-budget"].as<double>() > 0 ? vm["time-budget"].as<double>() : w.search.time_budget;
  o.max_steps_per_trial = vm["max-steps"].as<int64_t>();
  o.fixed_steps = vm["fixed-steps"].as<int64_t>();
  o.resume = vm["resume"].as<bool>();
  o.parallel_trials = vm["parallel-trials"].as<bool>();
  o.trial_ranks = vm["trial-ranks"].as<int>();
  GEMEL_THROW_IF_NOT(o.trial_ranks >= 0, UsageError, "--trial-ranks {}: expected 0 or more",
                     o.trial_ranks);
  // Heartbeats beside results.h5: every rank sees that directory.
  dist::startWatchdog(vm["timeout"].as<double>(), (fs::path(o.out_dir) / ".heartbeat").string(),
                      world);
  const auto start = std::chrono::steady_clock::now();
  const auto results = merge::runMerge(w, vm["config"].as<std::string>(), o, world);
  if (!world.lead()) return 0;
  std::vector<double> acc;
  for (const auto& t : results.tasks) acc.push_back(t.final_score);
  merge::printSummary(results, acc);
  std::printf("results: %s  (%.0f s)\n", (fs::path(o.out_dir) / "results.h5").string().c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}

// gemel eval --json: the file, its status and bytes, and each task's scores against its target.
void printEvalJson(const std::string& path, const io::Results& r, const std::vector<double>& acc,
                   bool all_met) {
  JsonWriter j;
  j.beginObject();
  j.key("results").value(path);
  j.key("status").value(r.status);
  j.key("total_bytes").value(r.total_bytes);
  j.key("merged_bytes").value(r.total_bytes - r.achieved_savings);
  j.key("saved_bytes").value(r.achieved_savings);
  j.key("all_met").value(all_met);
  j.key("tasks").beginArray();
  for (std::size_t i = 0; i < r.tasks.size(); ++i) {
    j.beginObject();
    j.key("name").value(r.tasks[i].name);
    j.key("metric").value(r.tasks[i].metric);
    j.key("unmerged_score").value(r.tasks[i].unmerged_score);
    j.key("target").value(r.tasks[i].target);
    j.key("score").value(acc[i]);
    j.key("met").value(acc[i] >= r.tasks[i].target);
    j.endObject();
  }
  j.endArray();
  j.endObject();
  std::printf("%s\n", j.str().c_str());
}

int runEvalCmd(const Args& args, const dist::World& world) {
  po::options_description desc("eval options");
  desc.add_options()("results", po::value<std::string>()->required(), "results.h5 of gemel merge")(
      "datasets-dir", po::value<std::string>(),
      "where the tasks' datasets are now, when they moved since the merge (the same file names)")(
      "json", po::bool_switch(), "print JSON instead of a table")(
      "detections", po::value<std::string>(),
      "also write each detection task's val detections to DIR/<task>.json, as a COCO results "
      "file (image_id: the val image's index, category_id: the class from 0, bbox: x, y, w, h "
      "in the image's pixels)");
  addThreadsOption(desc);
  po::variables_map vm;
  if (!parseCommandLine("eval", "--results FILE [--json] [--detections DIR]", desc, args, vm)) {
    return 0;
  }
  setupThreads(vm, world, vm["json"].as<bool>());
  const auto path = vm["results"].as<std::string>();
  const auto r = io::readResults(path);
  const std::string detections_dir =
      vm.count("detections") ? vm["detections"].as<std::string>() : "";
  if (!detections_dir.empty()) {
    requireWritableDirectory(detections_dir, "pass another --detections directory");
  }
  auto tasks =
      merge::loadMergedTasks(r, path, train::defaultDevice(),
                             vm.count("datasets-dir") ? vm["datasets-dir"].as<std::string>() : "");
  std::vector<double> acc;
  bool all_met = true;
  const auto start = std::chrono::steady_clock::now();
  for (auto& t : tasks) {
    const std::size_t i = acc.size();
    const auto t0 = std::chrono::steady_clock::now();
    log::info("eval", "scoring {}/{}: {} on {} val images", i + 1, tasks.size(), t->name(),
              t->valSize());
    const auto state = t->validate();
    acc.push_back(t->objective().score(state));
    if (!detections_dir.empty() && t->objective().recordSize() > 0) {
      const auto file = (fs::path(detections_dir) / (t->name() + ".json")).string();
      const auto found = train::cocoDetections(state.records);
      train::writeCocoResults(file, found);
      log::info("eval", "{}: {} detections on {} val images -> {}", t->name(), found.size(),
                state.images, file);
    }
    all_met = all_met && acc.back() >= r.tasks[i].target;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log::info(
        "eval", "{}: {} {} in {} s ({} s in all)", t->name(), r.tasks[i].metric,
        formatFixed(acc.back(), 4), formatFixed(seconds, 1),
        formatFixed(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                    0));
  }
  if (vm["json"].as<bool>()) {
    printEvalJson(path, r, acc, all_met);
  } else {
    std::printf("%s (%s)\n", path.c_str(), r.status.c_str());
    merge::printSummary(r, acc);
  }
  return static_cast<int>(all_met ? ExitCode::kOk : ExitCode::kBelowTarget);
}

// A task's full state_dict checked against its architecture and put in the model's own key
// order, keeping the given tensors (those a task shares are the same tensors in every task).
models::StateDict exportedState(const io::TaskRecord& rec, const models::StateDict& state) {
  if (rec.arch == "torchscript") return state;
  auto model =
      models::createTaskModel(rec.arch, rec.num_classes, rec.image_size, rec.mean, rec.std);
  model->loadStateDict(state, {false, rec.name});
  const std::map<std::string, torch::Tensor> given(state.begin(), state.end());
  models::StateDict out;
  for (const auto& [name, t] : model->stateDict()) {
    const auto it = given.find(name);
    // (a FrozenBatchNorm2d layout may lack counters the model has: the model's own then)
    out.emplace_back(name, it != given.end() ? it->second : t);
  }
  return out;
}

int runExportCmd(const Args& args, const dist::World& world) {
  po::options_description desc("export options");
  desc.add_options()("results", po::value<std::string>()->required(), "results.h5 of gemel merge")(
      "task", po::value<std::string>(), "the task to export")(
      "all", po::bool_switch(),
      "export every task into --out (a directory), and the whole merged workload as "
      "merged_workload.pt (each shared tensor once)")(
      "out", po::value<std::string>()->required(),
      "output .pt (with --task; an existing directory gets <task>.pt), or directory (with --all)");
  po::variables_map vm;
  if (!parseCommandLine("export", "--results FILE (--task NAME | --all) --out PATH", desc, args,
                        vm))
    return 0;
  const bool all = vm["all"].as<bool>();
  GEMEL_THROW_IF_NOT(all != (vm.count("task") > 0), UsageError, "give --task NAME or --all");
  const auto r = io::readResults(vm["results"].as<std::string>());
  const auto out = vm["out"].as<std::string>();
  std::vector<std::pair<std::string, std::string>> jobs;  // task, file
  if (all) {
    requireWritableDirectory(out, "give --out a writable directory");
    for (const auto& t : r.tasks)
      jobs.emplace_back(t.name, (fs::path(out) / (t.name + ".pt")).string());
  } else if (fs::is_directory(out)) {
    // --out an existing directory: the task's file goes in it.
    const auto task = vm["task"].as<std::string>();
    requireWritableDirectory(out, "give --out a writable directory, or a file name");
    jobs.emplace_back(task, (fs::path(out) / (task + ".pt")).string());
  } else {
    jobs.emplace_back(vm["task"].as<std::string>(), out);
  }
  std::vector<models::MergedTask> merged;
  for (const auto& [task, file] : jobs) {
    const io::TaskRecord* rec = nullptr;
    for (const auto& t : r.tasks) rec = t.name == task ? &t : rec;
    std::string names;
    for (const auto& t : r.tasks) names += (names.empty() ? "" : ", ") + t.name;
    GEMEL_THROW_IF_NOT(rec != nullptr, UsageError, "--task '{}': not a task of {}; its tasks: {}",
                       task, vm["results"].as<std::string>(), names);
    const auto state = exportedState(*rec, io::fullStateDict(r, task));
    models::writeStateDict(file, state);
    std::printf("%s -> %s\n", task.c_str(), file.c_str());
    if (all) {
      // torchvision counts the background
      const bool rcnn = models::isTorchvisionDetectorArch(rec->arch);
      merged.push_back({task, rec->arch, rec->num_classes + (rcnn ? 1 : 0), state});
    }
    if (models::isDarknetArch(rec->arch)) {
      // Darknet's own formats too: the network's cfg (with the task's classes) and .weights.
      const auto net = models::darknetForArch(rec->arch, rec->num_classes);
      const auto stem = fs::path(file).replace_extension("").string();
      const auto cfg_text = models::renderDarknetCfg(net);
      writeFileAtomic(stem + ".cfg", cfg_text.data(), cfg_text.size());
      models::writeDarknetWeights(stem + ".weights", net, state);
      std::printf("%s -> %s.cfg, %s.weights\n", task.c_str(), stem.c_str(), stem.c_str());
    }
  }
  if (all) {
    // The whole workload in one file, each shared tensor stored once (docs/export.md).
    const auto file = (fs::path(out) / "merged_workload.pt").string();
    models::writeMergedWorkload(file, merged);
    std::printf("all tasks -> %s (%s; the merged weights are %s)\n", file.c_str(),
                formatBytes(static_cast<int64_t>(fs::file_size(file))).c_str(),
                formatBytes(r.total_bytes - r.achieved_savings).c_str());
  }
  return 0;
}

}  // namespace

int runTrain(const Args& args, const dist::World& world) { return runTrainCmd(args, world); }
int runMerge(const Args& args, const dist::World& world) { return runMergeCmd(args, world); }
int runEval(const Args& args, const dist::World& world) { return runEvalCmd(args, world); }
int runExport(const Args& args, const dist::World& world) { return runExportCmd(args, world); }

}  // namespace gemel::cli
