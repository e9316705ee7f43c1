#pragma once
// Converters from the layouts users already have to gemel datasets (gemel-data).
#include <cstdint>
#include <string>
#include <vector>

namespace gemel::data {

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
// Fashion-MNIST's class names, by label.
const std::vector<std::string>& fashionMnistClasses();

struct FashionMnistOptions {
  std::string dir =
      kFashionMnistDir;      // the idx files (.gz or plain), Debian's dataset-fashion-mnist
  std::vector<int> classes;  // subset to keep, relabelled 0..k-1 in this order; empty: all
  int size = 28;             // output side in pixels (bilinear resize)
  int channels = 3;          // 3: grey replicated to RGB (what the zoo models take)
  int64_t max_train = 0;     // keep at most this many images per split (0: all)
  int64_t max_val = 0;
  std::vector<double> fractions;  // per kept class, the share of its images kept (skewed classes)
  uint64_t seed = 0;              // which images are kept when capped
};

// One Fashion-MNIST split as it is: 28x28 grey images and their labels. split: train | t10k.
struct FashionMnistSplit {
  int64_t count = 0;
  std::vector<uint8_t> images;  // count * 28 * 28
  std::vector<uint8_t> labels;
};
FashionMnistSplit readFashionMnist(const std::string& dir, const std::string& split);

// Returns the number of images written per split {train, val}.
std::vector<int64_t> convertFashionMnist(const FashionMnistOptions& options,
                                         const std::string& out);

// Bilinear resize of an HWC uint8 image (align_corners=false, like OpenCV's INTER_LINEAR).
void resizeBilinear(const uint8_t* src, int src_h, int src_w, int channels, uint8_t* dst, int dst_h,
                    int dst_w);

// Options shared by the OpenCV-based converters. Images are stored RGB (channels 3) or grey.
// height/width 0: keep the source size, which every image must then share.
struct ConvertOptions {
  int height = 0, width = 0;
  int channels = 3;
};

// `<root>/{train,val}/<class>/<image>` (JPEG, PNG, BMP). Classes are train's directory names,
// sorted (as torchvision's ImageFolder numbers them). Returns images per split {train, val}.
struct ImageFolderOptions : ConvertOptions {
  std::string root;
};
std::vector<int64_t> convertImageFolder(const ImageFolderOptions& options, const std::string& out);

// `<root>/{train,val}/{images,annotations}/`: annotations/<image stem>.txt holds YOLO lines
// `class x_center y_center width height` (normalised); stored as pixel boxes of the output
// image. Class names: `classes`, else the `names` file, else <root>/classes.txt or obj.names.
struct YoloOptions : ConvertOptions {
  std::string root;
  std::vector<std::string> classes;
  std::string names;
};
std::vector<int64_t> convertYolo(const YoloOptions& options, const std::string& out);

// Frames of a video at a stride, labelled either by a CSV of `frame,label` lines (label: a
// class name) or by a folder of YOLO files named by frame number (`000120.txt`). Only labelled
// frames on the stride are kept; the last `val_fraction` of them (in time) form the val split.
struct VideoOptions : ConvertOptions {
  std::string video;
  int stride = 1;
  std::string labels;                // CSV (classification)
  std::string annotations;           // YOLO folder (detection)
  std::vector<std::string> classes;  // order of the classes; default: sorted names in the CSV
  std::string names;
  double val_fraction = 0.2;
};
std::vector<int64_t> convertVideo(const VideoOptions& options, const std::string& out);

// An original-Gemel workload in one step: every <name>_CL (image folders) and <name>_OD (YOLO)
// folder in `src` (its dataset_formation/datasets, or that folder itself) becomes
// <out>/<folder>.h5, and <out>/<name>.yaml gets one task per entry of `tasks`. A task's name is its
// dataset's name followed by _<arch> (main_2nd_cars_people_resnet50 on main_2nd_cars_people_CL),
// the arch a gemel arch or one of the original tool's spellings (inception, mobilenetv3, ssd,
// ssdlite, fasterrcnn_<backbone>, yolov3_tiny). A task with <weights_dir>/<task>.pt (or .pth: a
// torch.save(model) or a state_dict) starts from it. Returns the workload's path.
struct ImportOptions {
  std::string src, out, weights_dir;
  std::string name = "imported";
  std::vector<std::string> tasks;
  ConvertOptions convert;  // every image resized to image_size x image_size
  int image_size = 224;
};
std::string importOriginalWorkload(const ImportOptions& options);

// Whether this build has the OpenCV converters.
bool haveOpenCV();
// The OpenCV library loaded at run time ("4.6.0"); "" without OpenCV.
std::string openCVVersion();
// "a, b,c" -> {"a", "b", "c"}.
std::vector<std::string> splitList(const std::string& text);
// One class name per non-empty line.
std::vector<std::string> readClassNames(const std::string& path);

// A detection camera: Fashion-MNIST items (bags and sneakers) placed on frames of opencv-doc's
// vtest.avi, with their exact boxes. Train takes the first 80% of the frames and Fashion-MNIST's
// train items, val the rest and its test items. `size`: the square image side; each item's
// side is a uniform share of it in [item_min, item_max] (a detector sees objects at the scales
// of its anchors), and an image holds 0 (one in ten) to max_items items.
// Returns images per split {train, val}.
struct BagsCameraOptions {
  int size = 128;
  int64_t train_images = 900, val_images = 300;
  double item_min = 0.2, item_max = 0.36;
  int max_items = 3;
};
std::vector<int64_t> buildBagsCamera(const std::string& out, const std::string& fashion_dir,
                                     const std::string& video, const BagsCameraOptions& options);
std::vector<int64_t> buildBagsCamera(const std::string& out, const std::string& fashion_dir,
                                     const std::string& video, int size, int64_t train_images,
                                     int64_t val_images);

// The bundled example: several camera tasks cut from Fashion-MNIST with different class subsets,
// sizes and image sizes, and a workload YAML naming them. Returns the YAML's path.
std::string buildDemo(const std::string& out_dir,
                      const std::string& fashion_dir = kFashionMnistDir);

inline constexpr const char* kOpenCVDataDir = "/usr/share/doc/opencv-doc/examples/data";

// The street workload from Debian's opencv-doc (vtest.avi and digits.png): two ResNet-18
// cameras on patches of the video's frames (the lower and upper band; person or empty, by a
// background model) and a ResNet-34 reading the digits, all at `size` px, and street.yaml
// naming them with each dataset's mean and std. Returns the YAML's path.
std::string buildStreet(const std::string& out_dir, const std::string& opencv_data = kOpenCVDataDir,
                        int size = 64);

}  // namespace gemel::data
