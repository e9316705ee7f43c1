// gemel bench: training throughput of one model on synthetic data, as gemel trains it: uint8
// images prepared on the device (letterbox, jitter, flip, normalisation for detectors), forward,
// the task's loss, backward and an SGD step. Detectors get random boxes. tests/bench/yolo_bench.sh
// runs it beside PyTorch-YOLOv3's own training step in Python.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>

#include "gemel/cli/commands.h"
#include "gemel/cli/options.h"
#include "gemel/config/workload.h"
#include "gemel/core/error.h"
#include "gemel/core/json.h"
#include "gemel/models/darknet_cfg.h"
#include "gemel/models/zoo.h"
#include "gemel/train/objective.h"
#include "gemel/train/task.h"

namespace gemel::cli {

int runBench(const Args& args) {
  po::options_description desc("bench options");
  desc.add_options()("arch", po::value<std::string>()->default_value("yolov3-tiny"),
                     "the model (a zoo classifier or a Darknet detector)")(
      "size", po::value<int>()->default_value(416), "input side in pixels")(
      "batch", po::value<int>()->default_value(8), "images per step")(
      "classes", po::value<int>()->default_value(80), "number of classes")(
      "steps", po::value<int>()->default_value(10), "timed steps (after 2 warm-up steps)")(
      "channels-last", po::value<std::string>()->default_value("both"),
      "memory format of the conv weights and inputs: off, on, or both (timed in turn)")(
      "json", po::bool_switch(), "print JSON");
  addThreadsOption(desc);
  po::variables_map vm;
  if (!parseCommandLine("bench", "[--arch A] [--size S] [--batch B] [--steps N]", desc, args, vm))
    return 0;
  const bool json = vm["json"].as<bool>();
  const auto threads = setupThreads(vm, json);
  config::TaskConfig task;
  task.name = "bench";
  task.arch = vm["arch"].as<std::string>();
  task.num_classes = vm["classes"].as<int>();
  task.image_size = vm["size"].as<int>();
  task.batch_size = vm["batch"].as<int>();
  const bool detection = models::isDarknetArch(task.arch);
  if (detection) {
    task.kind = config::TaskKind::kDetection;
    task.transforms.mean = {0, 0, 0};
    task.transforms.std = {1, 1, 1};
    GEMEL_THROW_IF_NOT(task.image_size % 32 == 0, UsageError,
                       "--size {}: {} needs a multiple of 32", task.image_size, task.arch);
  }
  const int steps = vm["steps"].as<int>(), b = task.batch_size, s = task.image_size;
  GEMEL_THROW_IF_NOT(steps > 0 && b > 0 && s >= 16, UsageError,
                     "--steps, --batch must be positive and --size at least 16");
  const auto device = train::defaultDevice();
  const auto cl_mode = vm["channels-last"].as<std::string>();
  GEMEL_THROW_IF_NOT(cl_mode == "off" || cl_mode == "on" || cl_mode == "both", UsageError,
                     "--channels-last '{}': expected off, on or both", cl_mode);
  std::vector<bool> modes;
  if (cl_mode != "on") modes.push_back(false);
  if (cl_mode != "off") modes.push_back(true);
  // A batch of noise images with 1-4 random boxes each (or labels), the same every step.
  torch::manual_seed(0);
  data::Batch batch;
  batch.images = torch::randint(0, 256, {b, s, s, 3}, torch::kUInt8);
  batch.labels = torch::randint(0, task.num_classes, {b}, torch::kLong);
  for (int i = 0; i < b; ++i) {
    std::vector<data::Box> boxes;
    for (int k = 0; k < 1 + i % 4; ++k) {
      const float w = s * (0.1f + 0.05f * k), x = s * (0.1f + 0.17f * k), y = s * (0.2f + 0.1f * (i % 5));
      boxes.push_back({float((i + k) % task.num_classes), x, y, x + w, y + w * 1.3f});
    }
    batch.boxes.push_back(std::move(boxes));
  }
  const auto objective = train::makeObjective(task);
  JsonWriter j;
  j.beginObject().key("arch").value(task.arch).key("size").value(s).key("batch").value(b);
  j.key("device").value(device.str()).key("threads").value(threads.threads);
  j.key("steps").value(steps).key("modes").beginArray();
  double best = 0;
  for (const bool channels_last : modes) {
    torch::manual_seed(0);
    auto model = models::buildTaskModel(task);
    model->to(device);
    model->train(true);
    std::vector<torch::Tensor> params;
    for (auto& [name, p] : model->namedParameters()) {
      // In place, so the module keeps using the same parameter.
      if (channels_last && p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
      params.push_back(p);
    }
    torch::optim::SGD sgd(params, torch::optim::SGDOptions(1e-3).momentum(0.9).weight_decay(5e-4));
    auto step = [&]() {
      data::Batch prepared = batch;
      auto x = objective->prepare(prepared, true, device);
      if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
      auto loss = objective->loss(model->forward(x), prepared);
      sgd.zero_grad();
      loss.backward();
      sgd.step();
      return loss;
    };
    for (int i = 0; i < 2; ++i) step().item<double>();
    const auto t0 = std::chrono::steady_clock::now();
    torch::Tensor last;
    for (int i = 0; i < steps; ++i) last = step();
    const double loss = last.item<double>();  // waits for the device
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double rate = steps * b / seconds;
    best = std::max(best, rate);
    const char* mode = channels_last ? "fp32 channels_last" : "fp32";
    j.beginObject().key("mode").value(mode).key("images_per_s").value(rate);
    j.key("seconds").value(seconds).key("loss").value(loss).endObject();
    if (!json) {
      std::printf("gemel bench: %s at %d px, batch %d, %d classes on %s (%d threads), %-18s "
                  "%8.2f images/s (%d steps in %.1f s, last loss %.3f)\n",
                  task.arch.c_str(), s, b, task.num_classes, device.str().c_str(), threads.threads,
                  mode, rate, steps, seconds, loss);
    }
  }
  j.endArray().key("images_per_s").value(best).endObject();
  if (json) std::printf("%s\n", j.str().c_str());
  return 0;
}

}  // namespace gemel::cli
