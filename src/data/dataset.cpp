#include "gemel/data/dataset.h"

#include <cmath>
#include <map>

#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "hdf5.h"

namespace gemel::data {
namespace {

constexpr hsize_t kWriteBatch = 256;  // images buffered before a write

// Every box inside its image, of a known class, with a positive width and height: the
// detectors' targets and the COCO scoring take them as they are. `boxes`: 5 values per box
// (class, x1, y1, x2, y2); `index`: each image's first box, then the count.
void checkBoxes(const h5::File& f, const std::string& object, const DatasetInfo& info,
                const std::vector<float>& boxes, const std::vector<int64_t>& index) {
  const auto classes = static_cast<float>(info.classes.size());
  const auto width = static_cast<float>(info.width);
  const auto height = static_cast<float>(info.height);
  for (std::size_t i = 0; i + 1 < index.size(); ++i) {
    for (int64_t k = index[i]; k < index[i + 1]; ++k) {
      const float* v = &boxes[static_cast<std::size_t>(k) * 5];
      const bool ok = v[0] >= 0 && v[0] < classes && v[0] == std::floor(v[0]) && v[1] >= 0 &&
                      v[2] >= 0 && v[3] <= width && v[4] <= height && v[1] < v[3] && v[2] < v[4];
      if (!ok)
        f.fail(object, format("box {} of image {} (class {}, x1 y1 x2 y2 = {} {} {} {}) is outside "
                              "the {}x{} image, empty, or of an unknown class (0..{}); fix its "
                              "source annotations",
                              k - index[i], i, v[0], v[1], v[2], v[3], v[4], info.width,
                              info.height, info.classes.size() - 1));
    }
  }
}

}  // namespace

std::string toString(DatasetKind kind) {
  return kind == DatasetKind::kClassification ? "classification" : "detection";
}

// --- writer ---

struct DatasetWriter::Impl {
  struct Split {
    std::unique_ptr<h5::Dataset> images;
    std::vector<uint8_t> pending;  // images not yet written
    int64_t written = 0;
    int64_t count = 0;
    std::vector<int64_t> labels;
    std::vector<float> boxes;  // 5 per box
    std::vector<int64_t> box_index{0};
  };
  std::string path;
  std::string temp;
  DatasetInfo info;
  std::unique_ptr<h5::File> file;
  std::map<std::string, Split> splits;
  bool committed = false;

  Split& split(const std::string& name) {
    GEMEL_ASSERT(name == "train" || name == "val", "unknown split '{}'", name);
    auto it = splits.find(name);
    if (it != splits.end()) return it->second;
    file->createGroup("/" + name);
    Split s;
    const hsize_t h = info.height, w = info.width, c = info.channels;
    s.images = std::make_unique<h5::Dataset>(h5::Dataset::create(
        *file, "/" + name + "/images", H5T_NATIVE_UINT8, {0, h, w, c}, {1, h, w, c}, true));
    return splits.emplace(name, std::move(s)).first->second;
  }

  void flush(Split& s) {
    const auto n = static_cast<hsize_t>(s.count - s.written);
    if (n == 0) return;
    s.images->extend(s.count);
    s.images->writeRows(s.written, n, H5T_NATIVE_UINT8, s.pending.data());
    s.written = s.count;
    s.pending.clear();
  }

  void add(const std::string& name, const uint8_t* image) {
    auto& s = split(name);
    s.pending.insert(s.pending.end(), image, image + info.imageBytes());
    ++s.count;
    if (static_cast<hsize_t>(s.count - s.written) >= kWriteBatch) flush(s);
  }
};

DatasetWriter::DatasetWriter(std::string path, DatasetInfo info) : impl_(std::make_unique<Impl>()) {
  GEMEL_THROW_IF_NOT(
      info.height > 0 && info.width > 0 && (info.channels == 1 || info.channels == 3), InputError,
      "{}: image size {}x{}x{} is not valid", path, info.height, info.width, info.channels);
  GEMEL_THROW_IF_NOT(!info.classes.empty(), InputError, "{}: a dataset needs at least one class",
                     path);
  impl_->path = std::move(path);
  impl_->temp = tempPathFor(impl_->path);
  impl_->info = std::move(info);
  impl_->file = std::make_unique<h5::File>(h5::File::create(impl_->temp, impl_->path));
}

DatasetWriter::~DatasetWriter() {
  if (impl_ && !impl_->committed) {
    impl_->splits.clear();
    impl_->file.reset();
    std::remove(impl_->temp.c_str());
  }
}

void DatasetWriter::addClassified(const std::string& split, const uint8_t* image, int64_t label) {
  GEMEL_THROW_IF_NOT(impl_->info.kind == DatasetKind::kClassification, InputError,
                     "{}: a detection dataset takes boxes, not labels", impl_->path);
  GEMEL_THROW_IF_NOT(label >= 0 && label < static_cast<int64_t>(impl_->info.classes.size()),
                     InputError, "{}: {} image {}: label {} is out of range (0..{})", impl_->path,
                     split, count(split), label, impl_->info.classes.size() - 1);
  impl_->add(split, image);
  impl_->split(split).labels.push_back(label);
}

void DatasetWriter::addDetected(const std::string& split, const uint8_t* image,
                                const std::vector<Box>& boxes) {
  const auto& info = impl_->info;
  GEMEL_THROW_IF_NOT(info.kind == DatasetKind::kDetection, InputError,
                     "{}: a classification dataset takes labels, not boxes", impl_->path);
  for (const auto& b : boxes) {
    const bool ok = b.cls >= 0 && b.cls < info.classes.size() && b.x1 >= 0 && b.y1 >= 0 &&
                    b.x2 <= info.width && b.y2 <= info.height && b.x1 < b.x2 && b.y1 < b.y2;
    GEMEL_THROW_IF_NOT(
        ok, InputError,
        "{}: {} image {}: box (class {}, {},{} - {},{}) is outside the {}x{} image or "
        "has an unknown class",
        impl_->path, split, count(split), b.cls, b.x1, b.y1, b.x2, b.y2, info.width, info.height);
  }
  impl_->add(split, image);
  auto& s = impl_->split(split);
  for (const auto& b : boxes) s.boxes.insert(s.boxes.end(), {b.cls, b.x1, b.y1, b.x2, b.y2});
  s.box_index.push_back(static_cast<int64_t>(s.boxes.size() / 5));
}

int64_t DatasetWriter::count(const std::string& split) const {
  const auto it = impl_->splits.find(split);
  return it == impl_->splits.end() ? 0 : it->second.count;
}

void DatasetWriter::commit() {
  auto& im = *impl_;
  for (const auto& name : kSplits) {
    GEMEL_THROW_IF_NOT(count(name) > 0, InputError,
                       "{}: the '{}' split is empty; a dataset needs train and val images", im.path,
                       name);
  }
  {
    auto& f = *im.file;
    for (auto& [name, s] : im.splits) {
      im.flush(s);
      const auto n = static_cast<hsize_t>(s.count);
      if (im.info.kind == DatasetKind::kClassification) {
        auto labels =
            h5::Dataset::create(f, "/" + name + "/labels", H5T_NATIVE_INT64, {n}, {}, false);
        labels.writeRows(0, n, H5T_NATIVE_INT64, s.labels.data());
      } else {
        const hsize_t m = s.boxes.size() / 5;
        auto boxes =
            h5::Dataset::create(f, "/" + name + "/boxes", H5T_NATIVE_FLOAT, {m, 5},
                                m > 0 ? std::vector<hsize_t>{} : std::vector<hsize_t>{}, false);
        if (m > 0) boxes.writeRows(0, m, H5T_NATIVE_FLOAT, s.boxes.data());
        auto index =
            h5::Dataset::create(f, "/" + name + "/box_index", H5T_NATIVE_INT64, {n + 1}, {}, false);
        index.writeRows(0, n + 1, H5T_NATIVE_INT64, s.box_index.data());
      }
      s.images.reset();
    }
    f.setAttr("/", "format", std::string(kFormatName));
    f.setAttr("/", "version", kFormatVersion);
    f.setAttr("/", "kind", toString(im.info.kind));
    f.setAttr("/", "classes", im.info.classes);
    f.setAttr("/", "height", im.info.height);
    f.setAttr("/", "width", im.info.width);
    f.setAttr("/", "channels", im.info.channels);
    im.splits.clear();
    f.close();
  }
  commitTempFile(im.temp, im.path);
  im.committed = true;
}

// --- reader ---

struct DatasetReader::Impl {
  std::string path;
  std::unique_ptr<h5::File> file;
  DatasetInfo info;
  struct Split {
    std::unique_ptr<h5::Dataset> images;
    int64_t size = 0;
    std::vector<int64_t> labels;
    std::vector<float> boxes;
    std::vector<int64_t> box_index;
  };
  std::map<std::string, Split> splits;

  const Split& split(const std::string& name) const {
    const auto it = splits.find(name);
    if (it == splits.end()) file->fail("/" + name, "missing split");
    return it->second;
  }
};

DatasetReader::DatasetReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  auto& im = *impl_;
  im.path = path;
  im.file = std::make_unique<h5::File>(
      h5::File::open(path, false, "rebuild it with gemel-data (gemel-data verify checks one)"));
  auto& f = *im.file;
  if (!f.hasAttr("/", "format") || f.attrString("/", "format") != kFormatName)
    f.fail("/", "not a gemel dataset (root attribute format != 'gemel-dataset')");
  const auto version = f.attrInt("/", "version");
  GEMEL_THROW_IF_NOT(version <= kFormatVersion, InputError,
                     "{}: dataset format version {} is newer than this gemel reads ({}); update "
                     "gemel",
                     path, version, kFormatVersion);
  const auto kind = f.attrString("/", "kind");
  if (kind == "classification") {
    im.info.kind = DatasetKind::kClassification;
  } else if (kind == "detection") {
    im.info.kind = DatasetKind::kDetection;
  } else {
    f.fail("/", "attribute kind is '" + kind + "'; expected classification or detection");
  }
  im.info.classes = f.attrStrings("/", "classes");
  im.info.height = f.attrInt("/", "height");
  im.info.width = f.attrInt("/", "width");
  im.info.channels = f.attrInt("/", "channels");
  if (im.info.classes.empty()) f.fail("/", "attribute classes is empty");
  for (const auto& name : kSplits) {
    if (!f.exists("/" + name)) continue;
    Impl::Split s;
    s.images = std::make_unique<h5::Dataset>(h5::Dataset::open(f, "/" + name + "/images"));
    const auto d = s.images->dims();
    const std::vector<hsize_t> expect = {d.empty() ? 0 : d[0], hsize_t(im.info.height),
                                         hsize_t(im.info.width), hsize_t(im.info.channels)};
    if (d != expect || !s.images->hasType(H5T_NATIVE_UINT8)) {
      f.fail("/" + name + "/images", "expected uint8 [N," + std::to_string(im.info.height) + "," +
                                         std::to_string(im.info.width) + "," +
                                         std::to_string(im.info.channels) +
                                         "] as the root attributes say");
    }
    s.size = static_cast<int64_t>(d[0]);
    if (im.info.kind == DatasetKind::kClassification) {
      auto labels = h5::Dataset::open(f, "/" + name + "/labels");
      if (labels.dims() != std::vector<hsize_t>{d[0]})
        f.fail(labels.name(), "expected one label per image");
      s.labels.resize(s.size);
      labels.readAll(H5T_NATIVE_INT64, s.labels.data());
    } else {
      auto index = h5::Dataset::open(f, "/" + name + "/box_index");
      if (index.dims() != std::vector<hsize_t>{d[0] + 1})
        f.fail(index.name(), "expected N+1 offsets");
      s.box_index.resize(s.size + 1);
      index.readAll(H5T_NATIVE_INT64, s.box_index.data());
      auto boxes = h5::Dataset::open(f, "/" + name + "/boxes");
      const auto bd = boxes.dims();
      if (bd.size() != 2 || bd[1] != 5) f.fail(boxes.name(), "expected float32 [M,5]");
      s.boxes.resize(bd[0] * 5);
      if (bd[0] > 0) boxes.readAll(H5T_NATIVE_FLOAT, s.boxes.data());
      if (s.box_index.back() != static_cast<int64_t>(bd[0]) || s.box_index.front() != 0) {
        f.fail(index.name(), "offsets do not cover the boxes (first must be 0, last M)");
      }
      for (std::size_t i = 1; i < s.box_index.size(); ++i) {
        if (s.box_index[i] < s.box_index[i - 1])
          f.fail(index.name(), format("offsets go down at image {} ({} after {}); they must "
                                      "not decrease",
                                      i - 1, s.box_index[i], s.box_index[i - 1]));
      }
      checkBoxes(f, boxes.name(), im.info, s.boxes, s.box_index);
    }
    im.splits.emplace(name, std::move(s));
  }
  if (im.splits.empty()) f.fail("/", "holds neither a train nor a val split");
}

DatasetReader::~DatasetReader() { impl_.reset(); }

const std::string& DatasetReader::path() const { return impl_->path; }
const DatasetInfo& DatasetReader::info() const { return impl_->info; }
bool DatasetReader::hasSplit(const std::string& split) const {
  return impl_->splits.count(split) > 0;
}
int64_t DatasetReader::size(const std::string& split) const { return impl_->split(split).size; }
const std::vector<int64_t>& DatasetReader::labels(const std::string& split) const {
  return impl_->split(split).labels;
}

std::vector<Box> DatasetReader::boxes(const std::string& split, int64_t index) const {
  const auto& s = impl_->split(split);
  std::vector<Box> out;
  if (s.box_index.empty()) return out;
  for (int64_t b = s.box_index[index]; b < s.box_index[index + 1]; ++b) {
    const float* v = &s.boxes[b * 5];
    out.push_back({v[0], v[1], v[2], v[3], v[4]});
  }
  return out;
}

void DatasetReader::readImages(const std::string& split, int64_t start, int64_t count,
                               uint8_t* out) const {
  const auto& s = impl_->split(split);
  s.images->readRows(start, count, H5T_NATIVE_UINT8, out);
}

void DatasetReader::verify() const {
  const auto& im = *impl_;
  const auto classes = static_cast<int64_t>(im.info.classes.size());
  for (const auto& [name, s] : im.splits) {
    for (int64_t i = 0; i < static_cast<int64_t>(s.labels.size()); ++i) {
      if (s.labels[i] < 0 || s.labels[i] >= classes) {
        im.file->fail("/" + name + "/labels",
                      "label " + std::to_string(s.labels[i]) + " of image " + std::to_string(i) +
                          " is out of range 0.." + std::to_string(classes - 1));
      }
    }
    // (The boxes were checked at opening.)
    // Every image must be readable: read in blocks.
    const int64_t block = 512;
    std::vector<uint8_t> buf(block * im.info.imageBytes());
    for (int64_t start = 0; start < s.size; start += block) {
      readImages(name, start, std::min(block, s.size - start), buf.data());
    }
  }
}

}  // namespace gemel::data
