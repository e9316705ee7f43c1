#include <gtest/gtest.h>

#include "gemel/merge/catalog.h"

namespace gemel::merge {
namespace {

using models::LayerInfo;
using models::LayerKind;

LayerInfo conv(const std::string& module, int64_t out, int64_t in, int64_t k) {
  LayerInfo l;
  l.module = module;
  l.kind = LayerKind::kConv2d;
  l.params = {"weight"};
  l.shapes = {{out, in, k, k}};
  l.hyper = "p1,1 d1,1 g1";
  l.bytes = out * in * k * k * 4;
  return l;
}

CatalogModel model(const std::string& name, std::vector<LayerInfo> layers) {
  CatalogModel m;
  m.name = name;
  m.arch = "test";
  for (const auto& l : layers) m.total_bytes += l.bytes;
  m.layers = std::move(layers);
  return m;
}

TEST(LayerCatalog, PairsTheKthLayerOfEachModelAndDropsLoneLayers) {
  // A has the 8x8 signature twice, B three times, C once.
  LayerCatalog cat({model("A", {conv("a1", 8, 8, 3), conv("a2", 8, 8, 3)}),
                    model("B", {conv("b1", 8, 8, 3), conv("b2", 8, 8, 3), conv("b3", 8, 8, 3)}),
                    model("C", {conv("c1", 8, 8, 3)})});
  ASSERT_EQ(cat.groups().size(), 2u);
  // Instance 0 spans A, B, C: saves 2 layers; instance 1 spans A, B: saves 1; b3 is alone.
  const auto& g0 = cat.groups()[0];
  EXPECT_EQ(g0.models, (std::vector<int>{0, 1, 2}));
  ASSERT_EQ(g0.instances.size(), 1u);
  EXPECT_EQ(g0.instances[0].members[0].module, "a1");
  EXPECT_EQ(g0.instances[0].members[1].module, "b1");
  EXPECT_EQ(g0.instances[0].members[2].module, "c1");
  EXPECT_EQ(g0.bytes_saved, 2 * 8 * 8 * 9 * 4);
  const auto& g1 = cat.groups()[1];
  EXPECT_EQ(g1.models, (std::vector<int>{0, 1}));
  ASSERT_EQ(g1.instances.size(), 1u);
  EXPECT_EQ(g1.instances[0].members[0].module, "a2");
  EXPECT_EQ(g1.instances[0].members[1].module, "b2");
  EXPECT_EQ(cat.savingsBytes(), 3 * 8 * 8 * 9 * 4);
  EXPECT_EQ(cat.totalBytes(), 6 * 8 * 8 * 9 * 4);
}

TEST(LayerCatalog, OrdersGroupsByBytesSavedAndNumbersThem) {
  LayerCatalog cat({model("A", {conv("small", 4, 4, 3), conv("big", 64, 64, 3)}),
                    model("B", {conv("small", 4, 4, 3), conv("big", 64, 64, 3)})});
  ASSERT_EQ(cat.groups().size(), 2u);
  EXPECT_EQ(cat.groups()[0].instances[0].members[0].module, "big");
  EXPECT_EQ(cat.groups()[0].id, 0);
  EXPECT_EQ(cat.groups()[1].id, 1);
  EXPECT_GT(cat.groups()[0].bytes_saved, cat.groups()[1].bytes_saved);
}

TEST(LayerCatalog, DifferentHyperParametersOrShapesDoNotShare) {
  auto dilated = conv("d", 8, 8, 3);
  dilated.hyper = "p2,2 d2,2 g1";
  LayerCatalog cat(
      {model("A", {conv("x", 8, 8, 3)}), model("B", {dilated}), model("C", {conv("y", 8, 8, 1)})});
  EXPECT_TRUE(cat.groups().empty());
  EXPECT_EQ(cat.savingsBytes(), 0);
}

TEST(LayerCatalog, InstancesOfOneSignatureSplitByModelSet) {
  // Same signature, but the second instance exists in A and C only (B has one such layer).
  LayerCatalog cat({model("A", {conv("a1", 8, 8, 3), conv("a2", 8, 8, 3)}),
                    model("B", {conv("b1", 8, 8, 3)}),
                    model("C", {conv("c1", 8, 8, 3), conv("c2", 8, 8, 3)})});
  ASSERT_EQ(cat.groups().size(), 2u);
  EXPECT_EQ(cat.groups()[0].models, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(cat.groups()[1].models, (std::vector<int>{0, 2}));
  EXPECT_EQ(cat.modelNames(cat.groups()[1]), (std::vector<std::string>{"A", "C"}));
}

}  // namespace
}  // namespace gemel::merge
