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
  uint64_t seed = 0;  // which images are kept when capped
};

// Returns the number of images written per split {train, val}.
std::vector<int64_t> convertFashionMnist(const FashionMnistOptions& options,
                                         const std::string& out);

// Bilinear resize of an HWC uint8 image (align_corners=false, like OpenCV's INTER_LINEAR).
void resizeBilinear(const uint8_t* src, int src_h, int src_w, int channels, uint8_t* dst, int dst_h,
                    int dst_w);

// The bundled example: several camera tasks cut from Fashion-MNIST with different class subsets,
// sizes and image sizes, and a workload YAML naming them. Returns the YAML's path.
std::string buildDemo(const std::string& out_dir,
                      const std::string& fashion_dir = kFashionMnistDir);

}  // namespace gemel::data
