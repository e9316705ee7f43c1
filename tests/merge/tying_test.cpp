// Tying: a shared layer is one tensor in every model that shares it, entered once in the
// optimizer, and its gradient is the sum of the gradients of its uses.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gemel/merge/catalog.h"
#include "gemel/merge/model_layers.h"
#include "gemel/merge/planner.h"
#include "gemel/merge/tying.h"
#include "gemel/models/zoo.h"
#include "gemel/train/joint_trainer.h"

namespace gemel::merge {
namespace {

struct Pair {
  std::unique_ptr<models::Model> a, b;
  std::vector<models::Model*> models;
  std::unique_ptr<LayerCatalog> catalog;
};

Pair makePair() {
  torch::manual_seed(0);
  Pair p;
  p.a = models::createZooModel("resnet18", 3);
  p.b = models::createZooModel("resnet18", 3);
  p.models = {p.a.get(), p.b.get()};
  p.catalog = std::make_unique<LayerCatalog>(
      std::vector<CatalogModel>{describeModel("A", *p.a), describeModel("B", *p.b)});
  return p;
}

std::map<std::string, torch::Tensor> params(const models::Model& m) {
  const auto named = m.namedParameters();
  return {named.begin(), named.end()};
}

TEST(Tying, OneTensorPerSharedLayerAndOneOptimizerEntry) {
  auto p = makePair();
  const auto& group = p.catalog->groups()[0];  // layer4's 512x512 convs: 3 instances
  ASSERT_EQ(group.instances.size(), 3u);
  Trial trial;
  trial.parts.push_back({group.id, {0, 1, 2}, {0, 1}});
  const auto plan = SharingPlan().with(trial);
  const auto snapshot = takeSnapshot(p.models);
  const auto before = train::uniqueParameters(p.models).size();
  materialize(p.models, *p.catalog, plan, snapshot);

  auto pa = params(*p.a), pb = params(*p.b);
  for (const auto& inst : group.instances) {
    const auto wa = pa.at(inst.members[0].module + ".weight");
    const auto wb = pb.at(inst.members[1].module + ".weight");
    EXPECT_EQ(wa.unsafeGetTensorImpl(), wb.unsafeGetTensorImpl()) << inst.members[1].module;
    // The shared value is A's (the first member), B's old value is gone.
    EXPECT_TRUE(torch::equal(wb, [&] {
      for (const auto& [n, t] : snapshot[0])
        if (n == inst.members[0].module + ".weight") return t;
      return torch::Tensor();
    }()));
  }
  // Unshared layers stay private.
  EXPECT_NE(pa.at("conv1.weight").unsafeGetTensorImpl(),
            pb.at("conv1.weight").unsafeGetTensorImpl());
  const auto unique = train::uniqueParameters(p.models);
  EXPECT_EQ(unique.size(), before - 3);
  torch::optim::SGD sgd(unique, torch::optim::SGDOptions(0.1));
  EXPECT_EQ(sgd.param_groups()[0].params().size(), before - 3);

  // A step moves the one tensor, and both models see it.
  const auto name_b = group.instances[0].members[1].module + ".weight";
  const auto old = pb.at(name_b).detach().clone();
  const auto x = torch::randn({2, 3, 32, 32});
  (p.a->forward(x).logits.sum() + p.b->forward(x).logits.sum()).backward();
  sgd.step();
  EXPECT_FALSE(torch::equal(params(*p.b).at(name_b), old));
  EXPECT_TRUE(torch::equal(params(*p.a).at(group.instances[0].members[0].module + ".weight"),
                           params(*p.b).at(name_b)));
}

TEST(Tying, SharedGradientIsTheSumOverItsUsesAndUntyingRestores) {
  auto p = makePair();
  const auto& group = p.catalog->groups()[0];
  const auto name_a = group.instances[1].members[0].module + ".weight";
  const auto name_b = group.instances[1].members[1].module + ".weight";
  auto snapshot = takeSnapshot(p.models);
  // Untied reference: B's copy of the layer holds A's values; gradients taken separately.
  for (auto& [n, t] : snapshot[1]) {
    if (n == name_b) {
      for (const auto& [na, ta] : snapshot[0])
        if (na == name_a) t = ta.clone();
    }
  }
  const auto x = torch::randn({2, 3, 32, 32});
  p.a->train(false);
  p.b->train(false);
  materialize(p.models, *p.catalog, SharingPlan(), snapshot);
  (p.a->forward(x).logits.pow(2).mean() + p.b->forward(x).logits.pow(2).mean()).backward();
  const auto ga = params(*p.a).at(name_a).grad().clone();
  const auto gb = params(*p.b).at(name_b).grad().clone();

  Trial trial;
  trial.parts.push_back({group.id, {1}, {0, 1}});  // only that layer: the rest as above
  materialize(p.models, *p.catalog, SharingPlan().with(trial), snapshot);
  (p.a->forward(x).logits.pow(2).mean() + p.b->forward(x).logits.pow(2).mean()).backward();
  const auto tied = params(*p.a).at(name_a).grad();
  EXPECT_TRUE(torch::allclose(tied, ga + gb, 1e-5, 1e-6));

  // Back to the untied snapshot: private tensors again, with the snapshot's values.
  materialize(p.models, *p.catalog, SharingPlan(), snapshot);
  EXPECT_NE(params(*p.a).at(name_a).unsafeGetTensorImpl(),
            params(*p.b).at(name_b).unsafeGetTensorImpl());
  EXPECT_FALSE(params(*p.b).at(name_b).grad().defined());
}

}  // namespace
}  // namespace gemel::merge
