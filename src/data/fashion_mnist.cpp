#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include "gemel/core/error.h"
#include "gemel/data/dataset.h"
#include "gemel/data/sources.h"

namespace fs = std::filesystem;

namespace gemel::data {
namespace {

struct Idx {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

// Reads an idx file (gzip-compressed or not: gzread handles both).
Idx readIdx(const std::string& path, int expected_rank) {
  GEMEL_THROW_IF_NOT(fs::exists(path), InputError,
                     "{}: missing; install Debian's dataset-fashion-mnist or pass --dir", path);
  gzFile f = gzopen(path.c_str(), "rb");
  GEMEL_THROW_IF_NOT(f != nullptr, InputError, "{}: cannot be opened", path);
  auto close = [&] { gzclose(f); };
  uint8_t header[4];
  if (gzread(f, header, 4) != 4 || header[0] != 0 || header[1] != 0 || header[2] != 0x08 ||
      header[3] != expected_rank) {
    close();
    throw InputError(
        format("{}: not an idx file of unsigned bytes with {} dimensions", path, expected_rank));
  }
  Idx idx;
  int64_t total = 1;
  for (int i = 0; i < expected_rank; ++i) {
    uint8_t b[4];
    if (gzread(f, b, 4) != 4) {
      close();
      throw InputError(format("{}: truncated header", path));
    }
    idx.dims.push_back((int64_t(b[0]) << 24) | (int64_t(b[1]) << 16) | (int64_t(b[2]) << 8) | b[3]);
    total *= idx.dims.back();
  }
  idx.data.resize(total);
  const auto got = gzread(f, idx.data.data(), static_cast<unsigned>(total));
  close();
  GEMEL_THROW_IF_NOT(got == total, InputError, "{}: truncated: {} of {} bytes", path, got, total);
  return idx;
}

}  // namespace

const std::vector<std::string>& fashionMnistClasses() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

void resizeBilinear(const uint8_t* src, int src_h, int src_w, int channels, uint8_t* dst, int dst_h,
                    int dst_w) {
  const float sy = float(src_h) / dst_h, sx = float(src_w) / dst_w;
  for (int y = 0; y < dst_h; ++y) {
    const float fy = std::max(0.0f, (y + 0.5f) * sy - 0.5f);
    const int y0 = std::min(int(fy), src_h - 1), y1 = std::min(y0 + 1, src_h - 1);
    const float wy = fy - y0;
    for (int x = 0; x < dst_w; ++x) {
      const float fx = std::max(0.0f, (x + 0.5f) * sx - 0.5f);
      const int x0 = std::min(int(fx), src_w - 1), x1 = std::min(x0 + 1, src_w - 1);
      const float wx = fx - x0;
      for (int c = 0; c < channels; ++c) {
        auto at = [&](int yy, int xx) { return float(src[(yy * src_w + xx) * channels + c]); };
        const float v = (1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x1)) +
                        wy * ((1 - wx) * at(y1, x0) + wx * at(y1, x1));
        dst[(y * dst_w + x) * channels + c] =
            static_cast<uint8_t>(std::lround(std::clamp(v, 0.0f, 255.0f)));
      }
    }
  }
}

FashionMnistSplit readFashionMnist(const std::string& dir, const std::string& split) {
  std::string images_path = dir + "/" + split + "-images-idx3-ubyte";
  std::string labels_path = dir + "/" + split + "-labels-idx1-ubyte";
  if (!fs::exists(images_path)) images_path += ".gz";
  if (!fs::exists(labels_path)) labels_path += ".gz";
  auto images = readIdx(images_path, 3);
  auto labels = readIdx(labels_path, 1);
  GEMEL_THROW_IF_NOT(images.dims[0] == labels.dims[0], InputError,
                     "{}: {} images but {} labels in {}", images_path, images.dims[0],
                     labels.dims[0], labels_path);
  GEMEL_THROW_IF_NOT(images.dims[1] == 28 && images.dims[2] == 28, InputError,
                     "{}: images of {}x{}, expected Fashion-MNIST's 28x28", images_path,
                     images.dims[1], images.dims[2]);
  for (int64_t i = 0; i < labels.dims[0]; ++i) {
    GEMEL_THROW_IF_NOT(labels.data[i] < 10, InputError,
                       "{}: label {} of image {} is out of range 0..9", labels_path, labels.data[i],
                       i);
  }
  return {images.dims[0], std::move(images.data), std::move(labels.data)};
}

namespace {

// The first `fractions[k]` of class k's images (in a seeded shuffle), in file order: skewed
// classes, as a camera sees some classes far more often than others.
std::vector<int64_t> keepFractions(const std::vector<int64_t>& keep,
                                   const std::vector<uint8_t>& labels,
                                   const std::vector<int>& relabel, const FashionMnistOptions& o,
                                   const std::string& split) {
  std::vector<std::vector<int64_t>> per(o.fractions.size());
  for (const auto i : keep) per[relabel[labels[i]]].push_back(i);
  std::vector<int64_t> out;
  std::mt19937_64 rng(o.seed + (split == "train" ? 2 : 3));
  for (std::size_t k = 0; k < per.size(); ++k) {
    std::shuffle(per[k].begin(), per[k].end(), rng);
    const auto n = static_cast<std::size_t>(std::ceil(o.fractions[k] * per[k].size()));
    out.insert(out.end(), per[k].begin(), per[k].begin() + std::min(n, per[k].size()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::vector<int64_t> convertFashionMnist(const FashionMnistOptions& o, const std::string& out) {
  GEMEL_THROW_IF_NOT(o.size >= 1, UsageError, "--size {} must be positive", o.size);
  GEMEL_THROW_IF_NOT(o.channels == 1 || o.channels == 3, UsageError, "--channels must be 1 or 3");
  std::vector<int> classes = o.classes;
  if (classes.empty()) {
    classes.resize(10);
    std::iota(classes.begin(), classes.end(), 0);
  }
  std::vector<int> relabel(10, -1);
  DatasetInfo info;
  for (std::size_t i = 0; i < classes.size(); ++i) {
    GEMEL_THROW_IF_NOT(classes[i] >= 0 && classes[i] < 10 && relabel[classes[i]] < 0, UsageError,
                       "--classes: {} is not a Fashion-MNIST class (0..9) or is listed twice",
                       classes[i]);
    relabel[classes[i]] = static_cast<int>(i);
    info.classes.push_back(fashionMnistClasses()[classes[i]]);
  }
  GEMEL_THROW_IF_NOT(o.fractions.empty() || o.fractions.size() == classes.size(), UsageError,
                     "--fractions: {} values for {} classes; give one per class",
                     o.fractions.size(), classes.size());
  for (const double f : o.fractions) {
    GEMEL_THROW_IF_NOT(f > 0 && f <= 1, UsageError, "--fractions: {} is not in (0, 1]", f);
  }
  info.height = info.width = o.size;
  info.channels = o.channels;
  DatasetWriter writer(out, info);
  std::vector<uint8_t> resized(o.size * o.size), image(info.imageBytes());
  const std::pair<std::string, std::string> sources[2] = {{"train", "train"}, {"val", "t10k"}};
  for (const auto& [split, stem] : sources) {
    const auto read = readFashionMnist(o.dir, stem);
    const Idx images{{read.count, 28, 28}, read.images};
    const Idx labels{{read.count}, read.labels};
    const int h = static_cast<int>(images.dims[1]), w = static_cast<int>(images.dims[2]);
    std::vector<int64_t> keep;
    for (int64_t i = 0; i < labels.dims[0]; ++i) {
      const int label = labels.data[i];
      if (relabel[label] >= 0) keep.push_back(i);
    }
    if (!o.fractions.empty()) keep = keepFractions(keep, labels.data, relabel, o, split);
    const int64_t cap = split == "train" ? o.max_train : o.max_val;
    if (cap > 0 && static_cast<int64_t>(keep.size()) > cap) {
      std::mt19937_64 rng(o.seed + (split == "train" ? 0 : 1));
      std::shuffle(keep.begin(), keep.end(), rng);
      keep.resize(cap);
      std::sort(keep.begin(), keep.end());
    }
    for (const auto i : keep) {
      const uint8_t* src = &images.data[i * h * w];
      const uint8_t* grey = src;
      if (o.size != h || o.size != w) {
        resizeBilinear(src, h, w, 1, resized.data(), o.size, o.size);
        grey = resized.data();
      }
      for (int p = 0; p < o.size * o.size; ++p) {
        for (int c = 0; c < o.channels; ++c) image[p * o.channels + c] = grey[p];
      }
      writer.addClassified(split, image.data(), relabel[labels.data[i]]);
    }
  }
  std::vector<int64_t> counts = {writer.count("train"), writer.count("val")};
  writer.commit();
  return counts;
}

}  // namespace gemel::data
