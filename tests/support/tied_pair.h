#pragma once
// Two resnet18 tasks on Fashion-MNIST tops (16 px, augmented: crop padding and flips), with
// two layers tied (conv1.weight, layer1.0.conv1.weight): the joint step's numerical tests
// train them and compare every weight.
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "gemel/data/sources.h"
#include "gemel/train/joint_trainer.h"
#include "gemel/train/task.h"
#include "test_support.h"

namespace gemel::testing {

// Three classes of Debian's Fashion-MNIST (tops) at 16 px: 256 training images, `val` to
// score; returns the dataset's path in `dir`.
inline std::string writeTops(const TempDir& dir, int64_t val) {
  data::FashionMnistOptions fo;
  fo.classes = {0, 2, 6};
  fo.size = 16;
  fo.max_train = 256;
  fo.max_val = val;
  data::convertFashionMnist(fo, dir.file("tops.h5"));
  return dir.file("tops.h5");
}

struct TiedPair {
  std::vector<std::unique_ptr<train::TaskRuntime>> tasks;
  explicit TiedPair(const std::string& dataset, const torch::Device& device = torch::kCPU,
                    const std::string& precision = "fp32") {
    for (int t = 0; t < 2; ++t) {
      config::TaskConfig c;
      c.name = "tops_" + std::to_string(t);
      c.arch = "resnet18";
      c.num_classes = 3;
      c.dataset = dataset;
      c.batch_size = 32;
      c.image_size = 16;
      c.precision = precision;
      c.transforms.crop_padding = 2;  // and hflip: the draws must match too
      tasks.push_back(std::make_unique<train::TaskRuntime>(c, t, device, 3));
    }
    auto shared = tasks[0]->model().namedParameters();
    for (const auto& [name, p] : shared) {
      if (name == "conv1.weight" || name == "layer1.0.conv1.weight")
        tasks[1]->model().setParameter(name, p);
    }
  }
  std::vector<torch::Tensor> state(int t) const {
    std::vector<torch::Tensor> out;
    for (const auto& [name, v] : tasks[t]->model().stateDict()) out.push_back(v);
    return out;
  }
  // The largest difference between two pairs' weights and buffers (integer buffers, the
  // BatchNorm step counts, must be equal: +inf where they are not).
  double largestDifference(const TiedPair& other) const {
    double worst = 0;
    for (int t = 0; t < 2; ++t) {
      const auto a = state(t), b = other.state(t);
      if (a.size() != b.size()) return INFINITY;
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (!torch::isFloatingType(a[i].scalar_type())) {
          if (!torch::equal(a[i].cpu(), b[i].cpu())) return INFINITY;
          continue;
        }
        worst = std::max(worst, (a[i].cpu() - b[i].cpu()).abs().max().item<double>());
      }
    }
    return worst;
  }
  // Whether the tie held (one tensor in both models).
  bool tied() const {
    return tasks[0]->model().namedParameters()[0].second.is_same(
        tasks[1]->model().namedParameters()[0].second);
  }
};

// The pair trained jointly for `steps` fixed steps (lr 0.02, no early stop, no adaptive
// weights; the second task's loss weighted 0.5), with the given step capture.
inline train::TrialResult trainPair(TiedPair& pair, train::TrainOptions::Capture capture,
                                    int steps) {
  train::TrainOptions o;
  o.lr = 0.02;
  o.epochs = 1e9;
  o.max_steps = steps;
  o.early_stop = false;
  o.adaptive = false;
  o.capture = capture;
  train::JointTrainer trainer({{0, "tops_0", 0.0, pair.tasks[0].get(), 1.0, nullptr, true},
                               {1, "tops_1", 0.0, pair.tasks[1].get(), 0.5, nullptr, true}},
                              o);
  return trainer.run();
}

}  // namespace gemel::testing
