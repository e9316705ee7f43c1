// roi_align, nms and batched_nms on the CPU against torchvision.ops (ops_parity.h), and the
// inputs they refuse.
#include "ops_parity.h"

#include "gemel/core/error.h"
#include "gemel/ops/boxes.h"

namespace gemel::ops {
namespace {

TEST(OpsParity, RoiAlignAndItsGradientMatchTorchvisionOnTheCpu) {
  testing::TempDir dir;
  const auto ref = testing::opsReference(dir);
  // float32 sums of 4 to 100 taps; double to its own rounding.
  testing::checkRoiAlign(ref, torch::kCPU, 1e-5);
}

TEST(OpsParity, NmsAndBatchedNmsKeepWhatTorchvisionKeepsOnTheCpu) {
  testing::TempDir dir;
  testing::checkNms(testing::opsReference(dir), torch::kCPU);
}

// The box arithmetic of the two-stage detectors against torchvision's (ops_ref.py: box.*).
TEST(OpsParity, BoxIouClipCoderMatcherAndAnchorsMatchTorchvision) {
  testing::TempDir dir;
  const auto ref = testing::opsReference(dir);
  const auto& a = ref.at("box.a");
  const auto& b = ref.at("box.b");
  const auto close = [](const torch::Tensor& x, const torch::Tensor& y) {
    return x.sizes() == y.sizes() && torch::allclose(x, y, 1e-5, 1e-5, /*equal_nan=*/true);
  };
  EXPECT_TRUE(close(boxIou(a, b), ref.at("box.iou")));
  EXPECT_TRUE(torch::equal(clipBoxesToImage(a * 1.2 - 5, 40, 50), ref.at("box.clipped")));
  EXPECT_TRUE(torch::equal(removeSmallBoxes(a, 4.0), ref.at("box.small")));
  const BoxCoder coder{{10, 10, 5, 5}};
  EXPECT_TRUE(close(coder.encode(ref.at("box.pb"), ref.at("box.pa")), ref.at("box.codes")));
  const auto decoded = coder.decode(ref.at("box.rel"), ref.at("box.pa"));
  EXPECT_EQ(decoded.sizes(), (std::vector<int64_t>{40, 2, 4}));
  EXPECT_TRUE(close(decoded.flatten(1), ref.at("box.decoded")));
  const auto& quality = ref.at("box.quality");
  EXPECT_TRUE(torch::equal((Matcher{0.7, 0.3, true})(quality), ref.at("box.matches0")));
  EXPECT_TRUE(torch::equal((Matcher{0.5, 0.5, false})(quality), ref.at("box.matches1")));
  EXPECT_THROW((Matcher{})(torch::zeros({0, 5})), InputError);

  AnchorGenerator fpn{{{32}, {64}, {128}, {256}, {512}}, {}};
  fpn.aspect_ratios.assign(5, {0.5, 1.0, 2.0});
  const auto fpn_anchors =
      fpn({128, 160}, {{32, 40}, {16, 20}, {8, 10}, {4, 5}, {2, 3}}, torch::kFloat);
  EXPECT_EQ(fpn.anchorsPerLocation(0), 3);
  EXPECT_TRUE(torch::equal(fpn_anchors, ref.at("box.anchors_fpn")));
  const AnchorGenerator plain{{{32, 64, 128, 256, 512}}, {{0.5, 1.0, 2.0}}};
  EXPECT_EQ(plain.anchorsPerLocation(0), 15);
  EXPECT_TRUE(torch::equal(plain({96, 128}, {{6, 8}}, torch::kFloat), ref.at("box.anchors_plain")));
  EXPECT_THROW(plain({96, 128}, {{6, 8}, {3, 4}}, torch::kFloat), InputError);
}

TEST(Ops, WrongShapesAreRefusedWithWhatWasExpected) {
  const auto x = torch::zeros({1, 2, 4, 4});
  EXPECT_THROW(roiAlign(x, torch::zeros({3, 4}), 1.0, 2, 2, 2, false), InputError);
  EXPECT_THROW(roiAlign(x[0], torch::zeros({3, 5}), 1.0, 2, 2, 2, false), InputError);
  EXPECT_THROW(roiAlign(x, torch::zeros({3, 5}), 1.0, 0, 2, 2, false), InputError);
  EXPECT_THROW(nms(torch::zeros({3, 5}), torch::zeros({3}), 0.5), InputError);
  EXPECT_THROW(nms(torch::zeros({3, 4}), torch::zeros({2}), 0.5), InputError);
  EXPECT_THROW(
      batchedNms(torch::zeros({3, 4}), torch::zeros({3}), torch::zeros({2}, torch::kLong), 0.5),
      InputError);
  try {
    roiAlign(x, torch::zeros({3, 4}), 1.0, 2, 2, 2, false);
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("[K, 5]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gemel::ops
