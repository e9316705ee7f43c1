#pragma once
// The gemel dataset file (docs/formats.md): one HDF5 file per task.
//   /            attrs: format="gemel-dataset", version, kind, classes, height, width, channels
//   /<split>/images     uint8 [N,H,W,C], chunked per image
//   /<split>/labels     int64 [N]                          classification
//   /<split>/boxes      float32 [M,5] class,x1,y1,x2,y2    detection (pixels)
//   /<split>/box_index  int64 [N+1] offsets into boxes     detection
// Splits are "train" and "val".
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gemel::data {

enum class DatasetKind { kClassification, kDetection };
std::string toString(DatasetKind kind);

inline constexpr const char* kFormatName = "gemel-dataset";
inline constexpr int64_t kFormatVersion = 1;
inline const std::array<std::string, 2> kSplits = {"train", "val"};

struct Box {
  float cls = 0, x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // pixels
};

struct DatasetInfo {
  DatasetKind kind = DatasetKind::kClassification;
  std::vector<std::string> classes;
  int64_t height = 0, width = 0, channels = 3;
  int64_t imageBytes() const { return height * width * channels; }
};

// Writes a dataset to a temporary file beside `path`; commit() renames it into place. Until
// then (and if anything fails) `path` is untouched and the temporary file is removed.
class DatasetWriter {
 public:
  DatasetWriter(std::string path, DatasetInfo info);
  ~DatasetWriter();
  DatasetWriter(const DatasetWriter&) = delete;
  DatasetWriter& operator=(const DatasetWriter&) = delete;

  // image: height*width*channels bytes, HWC order.
  void addClassified(const std::string& split, const uint8_t* image, int64_t label);
  void addDetected(const std::string& split, const uint8_t* image, const std::vector<Box>& boxes);
  int64_t count(const std::string& split) const;
  void commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads a dataset; the constructor checks the layout, so a wrong or truncated file fails at
// open with the file and the object named. Thread-safe: the h5 wrapper serialises every HDF5 call.
class DatasetReader {
 public:
  explicit DatasetReader(const std::string& path);
  ~DatasetReader();
  DatasetReader(const DatasetReader&) = delete;
  DatasetReader& operator=(const DatasetReader&) = delete;

  const std::string& path() const;
  const DatasetInfo& info() const;
  bool hasSplit(const std::string& split) const;
  int64_t size(const std::string& split) const;
  const std::vector<int64_t>& labels(const std::string& split) const;     // classification
  std::vector<Box> boxes(const std::string& split, int64_t index) const;  // detection
  // Copies images [start, start + count) into out (count * imageBytes() bytes).
  void readImages(const std::string& split, int64_t start, int64_t count, uint8_t* out) const;
  // Checks every invariant (labels in range, boxes inside their image, offsets monotone, every
  // image readable); throws InputError naming the file, split and index of the first failure.
  void verify() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gemel::data
