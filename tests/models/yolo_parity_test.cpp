// Detection against its references: PyTorch-YOLOv3 (`pytorchyolo`, from PyPI) for the model,
// the .weights format, decoding, NMS and the loss; pycocotools for mAP. gemel writes its side,
// tests/models/yolo_ref.py computes the reference and compares. NMS is also checked against a
// brute-force reference here.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "gemel/core/error.h"
#include "gemel/core/json.h"
#include "gemel/models/darknet_cfg.h"
#include "gemel/models/zoo.h"
#include "gemel/train/detection.h"
#include "gemel/train/precision.h"
#include "test_support.h"

namespace gemel::train {
namespace {

using testing::run;
using testing::shellQuote;
using testing::TempDir;

const std::string kModels = std::string(GEMEL_SOURCE_DIR) + "/configs/models/";
const std::string kReference = std::string(GEMEL_SOURCE_DIR) + "/tests/models/yolo_ref.py";

void reference(const std::string& args) {
  const auto r = run(shellQuote(GEMEL_PYTHON) + " " + shellQuote(kReference) + " " + args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::printf("%s", r.output.c_str());
}

// pytorchyolo's weights_init_normal, and BatchNorm statistics away from (0, 1) so that eval mode
// is not the identity.
void initLikePytorchyolo(models::Model& model) {
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : model.namedParameters()) {
    if (name.find(".conv_") != std::string::npos && name.size() > 7 &&
        name.compare(name.size() - 7, 7, ".weight") == 0) {
      t.normal_(0.0, 0.02);
    } else if (name.find(".batch_norm_") != std::string::npos) {
      if (name.compare(name.size() - 7, 7, ".weight") == 0)
        t.normal_(1.0, 0.02);
      else
        t.uniform_(-0.05, 0.05);
    }
  }
  for (auto& [name, t] : model.namedBuffers()) {
    if (name.find("running_mean") != std::string::npos) t.uniform_(-0.1, 0.1);
    if (name.find("running_var") != std::string::npos) t.uniform_(0.5, 1.5);
  }
}

TEST(YoloParity, ParameterNamesAndShapesMatchPytorchyolo) {
  TempDir dir;
  // The shipped yolov3.cfg as it is (80 classes), and yolov3-tiny with 3 classes, written back
  // as a cfg by gemel (what export writes).
  auto v3 = models::createDarknetModel("yolov3", models::darknetForArch("yolov3", 80));
  v3->saveWeightsFile(dir.file("v3.pt"));
  reference("names " + shellQuote(kModels + "yolov3.cfg") + " " + shellQuote(dir.file("v3.pt")));

  const auto tiny = models::darknetForArch("yolov3-tiny", 3);
  const auto text = models::renderDarknetCfg(tiny);
  testing::writeText(dir.file("tiny.cfg"), text);
  const auto again = models::parseDarknetCfg(dir.file("tiny.cfg"));
  EXPECT_EQ(again.layers.size(), tiny.layers.size());
  EXPECT_EQ(again.parameterCount(), tiny.parameterCount());
  EXPECT_EQ(again.classes(), 3);
  models::createDarknetModel("yolov3-tiny", tiny)->saveWeightsFile(dir.file("tiny.pt"));
  reference("names " + shellQuote(dir.file("tiny.cfg")) + " " + shellQuote(dir.file("tiny.pt")));
}

// Same weights and inputs on both sides: outputs, NMS, loss; and the .weights file.
void runAgainstPytorchyolo(const std::string& arch, int classes, int64_t size) {
  TempDir dir;
  torch::manual_seed(7);
  const auto net = models::darknetForArch(arch, classes);
  auto model = models::createDarknetModel(arch, net);
  initLikePytorchyolo(*model);
  testing::writeText(dir.file("net.cfg"), models::renderDarknetCfg(net));
  model->saveWeightsFile(dir.file("gemel.pt"));
  models::writeDarknetWeights(dir.file("gemel.weights"), net, model->stateDict());
  // The .weights file reads back bit for bit.
  const auto back = models::readDarknetWeights(dir.file("gemel.weights"), net);
  const auto state = model->stateDict();
  for (const auto& [name, t] : back) {
    bool found = false;
    for (const auto& [n, s] : state) {
      if (n != name) continue;
      found = true;
      if (name.find("num_batches_tracked") == std::string::npos) {
        EXPECT_TRUE(torch::equal(t, s)) << name;
      }
    }
    EXPECT_TRUE(found) << name;
  }

  const auto heads = yoloHeads(net);
  const auto x = torch::rand({2, 3, size, size});
  // Boxes of several sizes and classes, one near the far edge, none in a third image slot.
  const auto targets = torch::tensor({0.f, 0.f, 0.50f,  0.50f, 0.30f, 0.40f,  //
                                      0.f, 1.f, 0.20f,  0.25f, 0.10f, 0.08f,  //
                                      0.f, 2.f, 0.999f, 0.70f, 0.20f, 0.20f,  //
                                      1.f, 1.f, 0.60f,  0.30f, 0.55f, 0.35f,  //
                                      1.f, 0.f, 0.35f,  0.80f, 0.05f, 0.06f})
                           .view({-1, 6});
  models::StateDict io{{"x", x}, {"targets", targets}};
  {
    model->train(false);
    torch::NoGradGuard no_grad;
    const auto decoded = decodeYolo(model->forward(x).logits, heads, size);
    io.emplace_back("decoded", decoded);
    NmsOptions o;
    const auto kept = nonMaxSuppression(decoded, o);
    for (std::size_t i = 0; i < kept.size(); ++i)
      io.emplace_back("nms_" + std::to_string(i), kept[i]);
    EXPECT_GT(kept[0].size(0), 0);
  }
  model->train(true);
  const auto raw = model->forward(x).logits;
  const auto loss = yoloLoss(raw, heads, size, targets);
  loss.total.backward();  // differentiable end to end
  io.emplace_back("raw", raw.detach());
  io.emplace_back("loss", torch::cat({loss.total, loss.box, loss.obj, loss.cls}).detach());
  // Every parameter's gradient of the loss, compared with pytorchyolo's backward.
  int with_grad = 0;
  for (const auto& [name, p] : model->namedParameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    with_grad += p.grad().abs().max().item<double>() > 0;
    io.emplace_back("grad." + name, p.grad().detach().clone());
  }
  EXPECT_GT(with_grad, 0);
  models::writeStateDict(dir.file("io.pt"), io);
  reference("run " + shellQuote(dir.path()));
}

TEST(YoloParity, TinyOutputsNmsLossAndWeightsMatchPytorchyolo) {
  runAgainstPytorchyolo("yolov3-tiny", 3, 96);
}

TEST(YoloParity, YoloV3OutputsNmsLossAndWeightsMatchPytorchyolo) {
  runAgainstPytorchyolo("yolov3", 4, 64);
}

// The detection step under bf16 autocast, where bf16 is native (as `precision: auto` picks it
// there), against pytorchyolo's under torch.autocast from the same weights and inputs: the
// loss and every gradient finite, and each gradient as close to its fp32 value (cosine) as
// PyTorch's bf16 gradient is to PyTorch's fp32 one (yolo_ref.py bf16).
TEST(YoloParity, Bf16TrainingStepIsAsCloseToFp32AsPytorchyolos) {
  if (train::resolvePrecision("auto", torch::kCPU) != train::Precision::kBf16)
    GTEST_SKIP() << "bf16 is not native on this CPU (no AVX512-BF16 or AMX): precision auto "
                    "trains detectors in fp32 here";
  TempDir dir;
  torch::manual_seed(11);
  const auto net = models::darknetForArch("yolov3-tiny", 3);
  auto model = models::createDarknetModel("yolov3-tiny", net);
  initLikePytorchyolo(*model);
  testing::writeText(dir.file("net.cfg"), models::renderDarknetCfg(net));
  model->saveWeightsFile(dir.file("gemel.pt"));
  model->train(true);
  const int64_t size = 96;
  const auto heads = yoloHeads(net);
  const auto x = torch::rand({4, 3, size, size});
  const auto targets = torch::tensor({0.f, 0.f, 0.50f, 0.50f, 0.30f, 0.40f,  //
                                      1.f, 1.f, 0.20f, 0.25f, 0.10f, 0.08f,  //
                                      2.f, 2.f, 0.70f, 0.70f, 0.20f, 0.20f,  //
                                      3.f, 1.f, 0.60f, 0.30f, 0.55f, 0.35f})
                           .view({-1, 6});
  models::StateDict io{{"x", x}, {"targets", targets}};
  for (const auto p : {train::Precision::kFp32, train::Precision::kBf16}) {
    const std::string tag = p == train::Precision::kBf16 ? "bf16" : "fp32";
    for (auto& [name, t] : model->namedParameters()) {
      if (t.grad().defined()) t.mutable_grad().zero_();
    }
    torch::Tensor raw;
    {
      train::AutocastScope autocast(torch::kCPU, p);
      raw = model->forward(x).logits;
    }
    const auto loss = yoloLoss(raw.to(torch::kFloat), heads, size, targets);
    loss.total.backward();
    ASSERT_TRUE(std::isfinite(loss.total.item<double>())) << tag;
    io.emplace_back("loss." + tag, loss.total.detach().view({1}));
    for (const auto& [name, t] : model->namedParameters()) {
      ASSERT_TRUE(torch::isfinite(t.grad()).all().item<bool>()) << tag << " " << name;
      io.emplace_back(tag + "." + name, t.grad().detach().clone());
    }
  }
  models::writeStateDict(dir.file("io.pt"), io);
  reference("bf16 " + shellQuote(dir.path()));
}

TEST(YoloParity, WeightsOfAnotherNetworkAreOneClearError) {
  TempDir dir;
  const auto tiny = models::darknetForArch("yolov3-tiny", 2);
  models::writeDarknetWeights(dir.file("tiny.weights"), tiny,
                              models::createDarknetModel("yolov3-tiny", tiny)->stateDict());
  try {
    models::readDarknetWeights(dir.file("tiny.weights"), models::darknetForArch("yolov3-tiny", 5));
    FAIL() << "no error";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(dir.file("tiny.weights")), std::string::npos) << m;
    EXPECT_NE(m.find("5 classes"), std::string::npos) << m;
    EXPECT_NE(m.find("another network"), std::string::npos) << m;
  }
}

// Brute force: per class, the definition of greedy NMS over every pair, in double.
std::vector<std::vector<double>> bruteForceNms(const torch::Tensor& decoded, double conf,
                                               double iou_limit) {
  std::vector<std::vector<double>> cand;  // x1 y1 x2 y2 score class
  const auto d = decoded.to(torch::kDouble);
  const int64_t nc = d.size(1) - 5;
  for (int64_t i = 0; i < d.size(0); ++i) {
    const double obj = d[i][4].item<double>();
    if (!(obj > conf)) continue;
    for (int64_t c = 0; c < nc; ++c) {
      const double s = static_cast<float>(d[i][5 + c].item<double>() * obj);
      if (!(s > conf)) continue;
      const double cx = d[i][0].item<double>(), cy = d[i][1].item<double>();
      const double w = d[i][2].item<double>(), h = d[i][3].item<double>();
      cand.push_back({cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, s, double(c)});
    }
  }
  std::stable_sort(cand.begin(), cand.end(),
                   [](const auto& a, const auto& b) { return a[4] > b[4]; });
  std::vector<std::vector<double>> kept;
  for (const auto& c : cand) {
    bool suppressed = false;
    for (const auto& k : kept) {
      if (k[5] != c[5]) continue;
      const double w = std::max(0.0, std::min(k[2], c[2]) - std::max(k[0], c[0]));
      const double h = std::max(0.0, std::min(k[3], c[3]) - std::max(k[1], c[1]));
      const double inter = w * h;
      const double uni = (k[2] - k[0]) * (k[3] - k[1]) + (c[2] - c[0]) * (c[3] - c[1]) - inter;
      suppressed = suppressed || inter / uni > iou_limit;
    }
    if (!suppressed) kept.push_back(c);
  }
  return kept;
}

TEST(YoloNms, MatchesABruteForceReference) {
  torch::manual_seed(3);
  // Crowded: 400 boxes in a 64 px image, three classes, scores spread widely.
  const int64_t n = 400;
  auto decoded = torch::empty({2, n, 8});
  decoded.narrow(2, 0, 2).uniform_(0, 64);
  decoded.narrow(2, 2, 2).uniform_(4, 30);
  decoded.narrow(2, 4, 4).uniform_(0, 1);
  NmsOptions o;
  o.conf = 0.05;
  o.iou = 0.4;
  const auto kept = nonMaxSuppression(decoded, o);
  for (int64_t i = 0; i < 2; ++i) {
    const auto want = bruteForceNms(decoded[i], o.conf, o.iou);
    ASSERT_EQ(kept[i].size(0), static_cast<int64_t>(std::min<std::size_t>(want.size(), 300)));
    ASSERT_GT(want.size(), 50u);
    for (int64_t k = 0; k < kept[i].size(0); ++k) {
      for (int j = 0; j < 6; ++j) {
        EXPECT_NEAR(kept[i][k][j].item<double>(), want[k][j], 1e-4)
            << "image " << i << " box " << k;
      }
    }
  }
  // One class: the best class per box, no multi-label.
  auto one = decoded.narrow(2, 0, 6).contiguous();
  const auto kept1 = nonMaxSuppression(one, o);
  const auto want1 = bruteForceNms(one[0], o.conf, o.iou);
  EXPECT_EQ(kept1[0].size(0), static_cast<int64_t>(want1.size()));
}

TEST(YoloCoco, MapMatchesPycocotoolsWithSeveralClassesCrowdedAndEmptyImages) {
  TempDir dir;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(0, 1);
  const int classes = 4, images = 24;
  std::vector<int64_t> records, counts(classes, 0);
  JsonWriter j;
  j.beginObject().key("classes").value(classes);
  j.key("images").beginArray();
  for (int i = 0; i < images; ++i) j.value(i + 1);
  j.endArray();
  std::vector<std::vector<data::Box>> truth(images);
  std::vector<torch::Tensor> dets(images);
  for (int i = 0; i < images; ++i) {
    // Image 3 has no objects and no detections, image 5 no objects but detections, image 7
    // objects but no detections; images 10 and 11 are crowded (40 objects).
    const int objects = (i == 3 || i == 5) ? 0 : (i == 10 || i == 11) ? 40 : 1 + int(u(rng) * 6);
    for (int k = 0; k < objects; ++k) {
      const float x = u(rng) * 180, y = u(rng) * 180, w = 4 + u(rng) * 60, h = 4 + u(rng) * 60;
      truth[i].push_back({float(int(u(rng) * (i == 10 ? 1 : classes))), x, y, x + w, y + h});
    }
    std::vector<float> rows;
    const int n = i == 3 || i == 7 ? 0 : int(truth[i].size()) * 2 + 3;
    for (int k = 0; k < n; ++k) {
      float x1, y1, x2, y2, cls;
      if (!truth[i].empty() && u(rng) < 0.7f) {  // near an object, maybe the wrong class
        const auto& b = truth[i][k % truth[i].size()];
        const float jx = (u(rng) - 0.5f) * 12, jy = (u(rng) - 0.5f) * 12;
        x1 = b.x1 + jx, y1 = b.y1 + jy, x2 = b.x2 + jx * 0.5f, y2 = b.y2 + jy * 0.5f;
        cls = u(rng) < 0.85f ? b.cls : float(int(u(rng) * classes));
      } else {
        x1 = u(rng) * 180, y1 = u(rng) * 180, x2 = x1 + 5 + u(rng) * 50, y2 = y1 + 5 + u(rng) * 50;
        cls = float(int(u(rng) * classes));
      }
      // A few equal scores, as a quantised model would give.
      const float score = k % 5 == 4 ? 0.5f : u(rng);
      rows.insert(rows.end(), {x1, y1, x2, y2, score, cls});
    }
    dets[i] = torch::tensor(rows, torch::kFloat).view({-1, 6});
  }
  // Images evaluated as two ranks would: odd images on one, even on the other, records
  // concatenated in rank order and counts summed.
  for (const int parity : {1, 0}) {
    for (int i = parity; i < images; i += 2) {
      cocoRecords(dets[i], truth[i], i + 1, classes, records, counts.data());
    }
  }
  const auto ap = cocoScore(records, counts.data(), classes);
  EXPECT_EQ(ap.classes, classes);
  j.key("map").value(ap.map).key("map50").value(ap.map50);
  j.key("truth").beginArray();
  for (int i = 0; i < images; ++i) {
    for (const auto& b : truth[i]) {
      j.beginArray().value(i + 1).value(int(b.cls)).value(double(b.x1)).value(double(b.y1));
      j.value(double(b.x2)).value(double(b.y2)).endArray();
    }
  }
  j.endArray().key("detections").beginArray();
  for (int i = 0; i < images; ++i) {
    for (int64_t k = 0; k < dets[i].size(0); ++k) {
      const auto r = dets[i][k];
      j.beginArray().value(i + 1).value(int(r[5].item<float>())).value(double(r[4].item<float>()));
      for (int c = 0; c < 4; ++c) j.value(double(r[c].item<float>()));
      j.endArray();
    }
  }
  j.endArray().endObject();
  testing::writeText(dir.file("coco.json"), j.str());
  reference("coco " + shellQuote(dir.path()));
}

}  // namespace
}  // namespace gemel::train
