#pragma once
// The names of the architectures gemel knows, without LibTorch: the config validator and the
// CLI use these to check user input before any model is built.
#include <string>
#include <vector>

namespace gemel::models {

// The arch name of a task whose model is a TorchScript module given by its weights file.
inline constexpr const char* kTorchScriptArch = "torchscript";

// Zoo architectures (torchvision-compatible), in the order they are listed to users.
const std::vector<std::string>& zooArchs();
// Built by createZooModel: the torchvision classifiers and the Darknet detectors.
bool isZooArch(const std::string& arch);
// Faster R-CNN: fasterrcnn_resnet50_fpn and fasterrcnn:<backbone> (resnet18, resnet50,
// resnet101, vgg16, mobilenet_v2); detection tasks and `gemel inspect --arch` take them.
bool isFasterRcnnArch(const std::string& arch);
// "fasterrcnn_resnet50_fpn, fasterrcnn:<resnet18|...>", for messages.
std::string fasterRcnnArchList();
// SSD: ssd300_vgg16 and ssdlite320_mobilenet_v3_large, as torchvision's builders make them.
bool isSsdArch(const std::string& arch);
std::string ssdArchList();
// torchvision's fixed input side (300, 320) and normalisation of an SSD arch, which a task gets
// unless it sets image_size or transforms.mean/std itself.
int ssdDefaultSize(const std::string& arch);
std::vector<double> ssdDefaultMean(const std::string& arch);
std::vector<double> ssdDefaultStd(const std::string& arch);
// The detectors that compute their own losses from each image's boxes and count the background
// as a class, as torchvision's do: Faster R-CNN and SSD. Detection tasks of these archs count
// their object classes (num_classes); the model has one more.
bool isTorchvisionDetectorArch(const std::string& arch);
// Zoo archs, the Faster R-CNNs, the SSDs, and "torchscript".
std::string knownArchList();
// The same without "torchscript": the archs gemel builds by name (inspect --arch).
std::string buildableArchList();
// Every arch name a task can give, spelled out (fasterrcnn:<backbone> once per backbone; not
// darknet:<cfg>): what a mistyped arch is matched against. buildableArchNames: without
// "torchscript".
std::vector<std::string> archNames();
std::vector<std::string> buildableArchNames();
// The parameter-name prefix of the final classifier layer ("fc.", "classifier.6.", ...).
std::string headPrefix(const std::string& arch);
// A second classifier layer with num_classes outputs that loads and skips with the head
// (Inception-v3's "AuxLogits.fc."); empty for other archs.
std::string auxHeadPrefix(const std::string& arch);
// Forward GFLOPs per 224x224 image (torchvision's published figures); 0 for a TorchScript
// model, whose architecture gemel does not know.
double forwardGflops224(const std::string& arch);
// Smallest input side the arch accepts (five stride-2 stages need at least 32 pixels; for a
// Faster R-CNN, image_size is its transform's min_size).
int minImageSize(const std::string& arch);

}  // namespace gemel::models
