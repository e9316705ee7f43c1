#include "gemel/models/archs.h"

#include <algorithm>

#include "gemel/models/darknet_cfg.h"

namespace gemel::models {

const std::vector<std::string>& zooArchs() {
  static const std::vector<std::string> archs = {
      "resnet18",    "resnet34",     "resnet50",           "resnet101",
      "resnet152",   "vgg11",        "vgg11_bn",           "vgg13",
      "vgg13_bn",    "vgg16",        "vgg16_bn",           "vgg19",
      "vgg19_bn",    "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
      "inception_v3"};
  return archs;
}

bool isZooArch(const std::string& arch) {
  const auto& a = zooArchs();
  return std::find(a.begin(), a.end(), arch) != a.end() || isDarknetArch(arch);
}

namespace {
const std::vector<std::string>& fasterRcnnBackbones() {
  static const std::vector<std::string> backbones = {"resnet18", "resnet50", "resnet101", "vgg16",
                                                     "mobilenet_v2"};
  return backbones;
}
}  // namespace

std::string fasterRcnnArchList() {
  std::string out =
      "fasterrcnn_resnet50_fpn, fasterrcnn_mobilenet_v3_large_fpn, "
      "fasterrcnn_mobilenet_v3_large_320_fpn, fasterrcnn:<";
  for (const auto& b : fasterRcnnBackbones()) out += (out.back() == '<' ? "" : "|") + b;
  return out + ">";
}

bool isSsdArch(const std::string& arch) {
  return arch == "ssd300_vgg16" || arch == "ssdlite320_mobilenet_v3_large";
}

std::string ssdArchList() { return "ssd300_vgg16, ssdlite320_mobilenet_v3_large"; }

int ssdDefaultSize(const std::string& arch) { return arch == "ssd300_vgg16" ? 300 : 320; }

std::vector<double> ssdDefaultMean(const std::string& arch) {
  if (arch == "ssd300_vgg16") return {0.48235, 0.45882, 0.40784};
  return {0.5, 0.5, 0.5};
}

std::vector<double> ssdDefaultStd(const std::string& arch) {
  if (arch == "ssd300_vgg16") return {1.0 / 255, 1.0 / 255, 1.0 / 255};
  return {0.5, 0.5, 0.5};
}

bool isTorchvisionDetectorArch(const std::string& arch) {
  return isFasterRcnnArch(arch) || isSsdArch(arch);
}

bool isFasterRcnnArch(const std::string& arch) {
  const auto& backbones = fasterRcnnBackbones();
  if (arch == "fasterrcnn_resnet50_fpn" || arch == "fasterrcnn_mobilenet_v3_large_fpn" ||
      arch == "fasterrcnn_mobilenet_v3_large_320_fpn")
    return true;
  const std::string prefix = "fasterrcnn:";
  return arch.rfind(prefix, 0) == 0 && std::find(backbones.begin(), backbones.end(),
                                                 arch.substr(prefix.size())) != backbones.end();
}

std::string buildableArchList() {
  std::string out;
  for (const auto& a : zooArchs()) out += a + ", ";
  return out + "yolov3, yolov3-tiny, darknet:<path to a .cfg>, " + fasterRcnnArchList() + ", " +
         ssdArchList();
}

std::string knownArchList() { return buildableArchList() + ", " + kTorchScriptArch; }

std::vector<std::string> buildableArchNames() {
  auto out = zooArchs();
  for (const auto& a :
       {"yolov3", "yolov3-tiny", "fasterrcnn_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn",
        "fasterrcnn_mobilenet_v3_large_320_fpn", "ssd300_vgg16", "ssdlite320_mobilenet_v3_large"})
    out.push_back(a);
  for (const auto& b : fasterRcnnBackbones()) out.push_back("fasterrcnn:" + b);
  return out;
}

std::vector<std::string> archNames() {
  auto out = buildableArchNames();
  out.push_back(kTorchScriptArch);
  return out;
}

std::string headPrefix(const std::string& arch) {
  if (arch.rfind("resnet", 0) == 0) return "fc.";
  if (arch.rfind("vgg", 0) == 0) return "classifier.6.";
  if (arch == "mobilenet_v2") return "classifier.1.";
  if (arch == "mobilenet_v3_large" || arch == "mobilenet_v3_small") return "classifier.3.";
  if (arch == "inception_v3") return "fc.";
  if (isFasterRcnnArch(arch)) return "roi_heads.box_predictor.";
  if (isSsdArch(arch)) return "head.classification_head.";
  return "";
}

std::string auxHeadPrefix(const std::string& arch) {
  return arch == "inception_v3" ? "AuxLogits.fc." : "";
}

double forwardGflops224(const std::string& arch) {
  struct Figure {
    const char* arch;
    double gflops;
  };
  static constexpr Figure kFigures[] = {{"resnet18", 1.81},
                                        {"resnet34", 3.66},
                                        {"resnet50", 4.09},
                                        {"resnet101", 7.80},
                                        {"resnet152", 11.51},
                                        {"vgg11", 7.61},
                                        {"vgg13", 11.31},
                                        {"vgg16", 15.47},
                                        {"vgg19", 19.63},
                                        {"vgg11_bn", 7.61},
                                        {"vgg13_bn", 11.31},
                                        {"vgg16_bn", 15.47},
                                        {"vgg19_bn", 19.63},
                                        {"mobilenet_v2", 0.30},
                                        {"yolov3", 19.1},
                                        {"yolov3-tiny", 1.61},
                                        {"mobilenet_v3_large", 0.22},
                                        {"mobilenet_v3_small", 0.06},
                                        {"inception_v3", 5.71}};
  for (const auto& f : kFigures) {
    if (arch == f.arch) return f.gflops;
  }
  // Faster R-CNN: torchvision's 134.38 GFLOPs for fasterrcnn_resnet50_fpn at 800x1067, per
  // 224x224; over a plain backbone, an estimate of twice the backbone (the RPN and the box
  // head over its proposals).
  if (arch == "fasterrcnn_resnet50_fpn") return 134.38 * 224 * 224 / (800.0 * 1067.0);
  // torchvision's 4.49 GFLOPs at 800 px and 0.72 at 320 px (4:3 images), per 224x224.
  if (arch == "fasterrcnn_mobilenet_v3_large_fpn") return 4.49 * 224 * 224 / (800.0 * 1067.0);
  if (arch == "fasterrcnn_mobilenet_v3_large_320_fpn") return 0.72 * 224 * 224 / (320.0 * 427.0);
  // SSD: torchvision's 34.86 GFLOPs at 300 px and 0.58 at 320 px, per 224x224.
  if (arch == "ssd300_vgg16") return 34.86 * 224 * 224 / (300.0 * 300.0);
  if (arch == "ssdlite320_mobilenet_v3_large") return 0.58 * 224 * 224 / (320.0 * 320.0);
  if (isFasterRcnnArch(arch)) return 2 * forwardGflops224(arch.substr(arch.find(':') + 1));
  return 0.0;
}

int minImageSize(const std::string& arch) {
  if (arch == "inception_v3") return 75;  // torchvision's min_size: Mixed_7a needs a 3x3 map
  // conv11_2 (a valid 3x3 conv) needs a 3x3 map from conv10_2, which needs 5x5 ...
  if (arch == "ssd300_vgg16") return 268;
  if (isSsdArch(arch)) return 32;
  return isZooArch(arch) || isFasterRcnnArch(arch) ? 32 : 1;
}

}  // namespace gemel::models
