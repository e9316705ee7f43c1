// The multi-tensor SGD against LibTorch's torch::optim::SGD: two copies of a ResNet trained on
// the same batches for 50 steps end with the same weights, with momentum, weight decay and with
// and without Nesterov.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gemel/models/zoo.h"
#include "gemel/train/sgd.h"

namespace gemel::train {
namespace {

double trainBoth(bool nesterov) {
  torch::manual_seed(5);
  auto a = models::createZooModel("resnet18", 4);
  auto b = models::createZooModel("resnet18", 4);
  b->loadStateDict(a->stateDict(), {false, "copy"});
  const auto before = a->namedParameters()[0].second.detach().clone();
  std::vector<torch::Tensor> pa, pb;
  for (auto& [n, p] : a->namedParameters()) pa.push_back(p);
  for (auto& [n, p] : b->namedParameters()) pb.push_back(p);
  torch::optim::SGD reference(
      pa, torch::optim::SGDOptions(0.05).momentum(0.9).weight_decay(5e-4).nesterov(nesterov));
  SgdOptions o;
  o.lr = 0.05;
  o.momentum = 0.9;
  o.weight_decay = 5e-4;
  o.nesterov = nesterov;
  ForeachSgd ours(pb, o);
  a->train(true);
  b->train(true);
  for (int step = 0; step < 50; ++step) {
    const auto x = torch::randn({4, 3, 16, 16});
    const auto y = torch::randint(0, 4, {4}, torch::kLong);
    reference.zero_grad();
    torch::nn::functional::cross_entropy(a->forward(x).logits, y).backward();
    reference.step();
    for (auto& p : pb) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    torch::nn::functional::cross_entropy(b->forward(x).logits, y).backward();
    ours.step();
  }
  double worst = 0;
  const auto sa = a->stateDict(), sb = b->stateDict();
  for (std::size_t i = 0; i < sa.size(); ++i) {
    if (!sa[i].second.is_floating_point()) continue;
    worst = std::max(worst, (sa[i].second - sb[i].second).abs().max().item<double>());
  }
  // The weights moved: the comparison is not between two untouched copies.
  EXPECT_GT((pa[0] - before).abs().max().item<double>(), 1e-3);
  return worst;
}

TEST(ForeachSgd, MatchesTorchOptimSgdOver50Steps) {
  EXPECT_LE(trainBoth(false), 1e-6);
  EXPECT_LE(trainBoth(true), 1e-6);
}

}  // namespace
}  // namespace gemel::train
