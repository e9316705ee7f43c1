// The Faster R-CNN objective on its own: what it feeds the model (images in [0, 1], each
// image's boxes flipped with it, labels counted from 1), its loss (the sum of the model's four)
// and its metric (COCO mAP from the model's detections, in the image's pixels).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "gemel/config/workload.h"
#include "gemel/data/transforms.h"
#include "gemel/train/objective.h"

namespace gemel::train {
namespace {

config::TaskConfig rcnnTask() {
  config::TaskConfig t;
  t.name = "bags";
  t.arch = "fasterrcnn:resnet18";
  t.kind = config::TaskKind::kDetection;
  t.num_classes = 2;
  t.image_size = 64;
  return t;
}

data::Batch twoImages() {
  torch::manual_seed(3);
  data::Batch b;
  b.images = torch::randint(0, 256, {2, 8, 10, 3}, torch::kUInt8);
  b.boxes = {{{0, 1, 2, 4, 6}}, {{1, 0, 0, 10, 8}, {0, 6, 1, 9, 3}}};
  b.indices = {4, 9};
  return b;
}

TEST(RcnnObjective, FeedsUnitRangeImagesWithTheirBoxesFlippedAndLabelsFromOne) {
  const auto objective = makeObjective(rcnnTask());
  EXPECT_EQ(objective->metric(), "map50");
  const auto plain = torch::Device(torch::kCPU);
  // Without draws (validation): the images as they are, scaled to [0, 1]; boxes unmoved.
  auto batch = twoImages();
  auto x = objective->prepare(batch, nullptr, plain);
  const auto expected = batch.images.permute({0, 3, 1, 2}).to(torch::kFloat) / 255;
  EXPECT_TRUE(torch::allclose(x, expected, 0, 1e-6));
  ASSERT_EQ(batch.box_targets.size(), 2u);
  EXPECT_TRUE(torch::equal(batch.box_targets[1].boxes,
                           torch::tensor({{0.f, 0.f, 10.f, 8.f}, {6.f, 1.f, 9.f, 3.f}})));
  EXPECT_TRUE(torch::equal(batch.box_targets[1].labels, torch::tensor({2L, 1L})));
  // With draws (training): over some steps each image is flipped sometimes, and its boxes
  // with it.
  int flipped = 0, kept = 0;
  for (int64_t step = 0; step < 16; ++step) {
    auto b = twoImages();
    auto draws = data::Draws::forStep(1, 0, step);
    x = objective->prepare(b, &draws, plain);
    const bool flip = b.box_targets[0].boxes[0][0].item<float>() == 10 - 4;
    const auto want = flip ? expected[0].flip({2}) : expected[0];
    EXPECT_TRUE(torch::allclose(x[0], want, 0, 1e-6)) << "step " << step;
    EXPECT_TRUE(torch::equal(b.box_targets[0].boxes, flip ? torch::tensor({{6.f, 2.f, 9.f, 6.f}})
                                                          : torch::tensor({{1.f, 2.f, 4.f, 6.f}})))
        << b.box_targets[0].boxes;
    (flip ? flipped : kept) += 1;
  }
  EXPECT_GT(flipped, 0);
  EXPECT_GT(kept, 0);
}

TEST(RcnnObjective, SumsTheFourLossesAndScoresTheDetections) {
  const auto objective = makeObjective(rcnnTask());
  auto batch = twoImages();
  models::ModelOutput out;
  out.losses = {{"loss_classifier", torch::tensor(0.5)},
                {"loss_box_reg", torch::tensor(0.25)},
                {"loss_objectness", torch::tensor(0.125)},
                {"loss_rpn_box_reg", torch::tensor(1.0)}};
  EXPECT_DOUBLE_EQ(objective->loss(out, batch).item<double>(), 1.875);
  // Detections of every box (labels from 1) score 1; moving one box off its object loses it.
  objective->prepare(batch, nullptr, torch::Device(torch::kCPU));
  out.losses.clear();
  for (const auto& t : batch.box_targets)
    out.detections.push_back(
        {t.boxes.clone(), torch::linspace(0.9, 0.8, t.boxes.size(0)), t.labels.clone()});
  auto state = objective->emptyState();
  objective->accumulate(out, batch, state);
  EXPECT_DOUBLE_EQ(objective->score(state), 1.0);
  out.detections[1].boxes[1] = torch::tensor({0.f, 5.f, 3.f, 8.f});
  state = objective->emptyState();
  objective->accumulate(out, batch, state);
  EXPECT_LT(objective->score(state), 1.0);
  EXPECT_GT(objective->score(state), 0.0);
}

}  // namespace
}  // namespace gemel::train
