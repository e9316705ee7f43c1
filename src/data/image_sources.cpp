// Converters from image folders, YOLO folders and videos (decoded with OpenCV) to gemel datasets.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "gemel/core/error.h"
#include "gemel/core/log.h"
#include "gemel/data/dataset.h"
#include "gemel/data/sources.h"

#ifdef GEMEL_HAVE_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#endif

namespace fs = std::filesystem;

namespace gemel::data {

std::vector<std::string> splitList(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t\r");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

std::vector<std::string> readClassNames(const std::string& path) {
  std::ifstream in(path);
  GEMEL_THROW_IF_NOT(in.good(), InputError, "{}: cannot read the class-names file", path);
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    const auto b = line.find_first_not_of(" \t"), e = line.find_last_not_of(" \t\r");
    if (b != std::string::npos) names.push_back(line.substr(b, e - b + 1));
  }
  GEMEL_THROW_IF_NOT(!names.empty(), InputError, "{}: no class names (one per line expected)",
                     path);
  return names;
}

#ifdef GEMEL_HAVE_OPENCV
namespace {

bool isImageFile(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

// Regular files of a directory, sorted by name (the order is part of the dataset).
std::vector<fs::path> sortedFiles(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Turns decoded frames/images into dataset rows: colour order (BGR -> RGB or grey), one output
// size (resized when asked; otherwise every image must have the first one's size).
class Framer {
 public:
  Framer(const ConvertOptions& o) : o_(o) {
    GEMEL_THROW_IF_NOT(o.channels == 1 || o.channels == 3, UsageError,
                       "--channels must be 1 or 3, not {}", o.channels);
    GEMEL_THROW_IF_NOT(o.height >= 0 && o.width >= 0 && (o.height > 0) == (o.width > 0), UsageError,
                       "--size must be positive (or give both --height and --width)");
  }
  // Fixes the output size from the first image when none was asked for, and records the
  // output layout in `info`.
  void begin(const cv::Mat& first, DatasetInfo& info) {
    height_ = o_.height > 0 ? o_.height : first.rows;
    width_ = o_.width > 0 ? o_.width : first.cols;
    info.height = height_;
    info.width = width_;
    info.channels = o_.channels;
  }
  int height() const { return height_; }
  int width() const { return width_; }
  // Source scale factors for boxes: output pixels per source pixel.
  double sx(const cv::Mat& m) const { return double(width_) / m.cols; }
  double sy(const cv::Mat& m) const { return double(height_) / m.rows; }

  // Converts `m` (as decoded by OpenCV: BGR, BGRA or grey) into `row`; `what` names it in errors.
  void convert(const cv::Mat& m, const std::string& what, std::vector<uint8_t>& row) {
    if (o_.height == 0 && (m.rows != height_ || m.cols != width_)) {
      throw InputError(
          format("{}: is {}x{} but the first image is {}x{}; pass --size (or "
                 "--height/--width) to resize every image",
                 what, m.rows, m.cols, height_, width_));
    }
    cv::Mat colour;
    if (o_.channels == 3) {
      cv::cvtColor(m, colour,
                   m.channels() == 1   ? cv::COLOR_GRAY2RGB
                   : m.channels() == 4 ? cv::COLOR_BGRA2RGB
                                       : cv::COLOR_BGR2RGB);
    } else {
      if (m.channels() == 1) {
        colour = m;
      } else {
        cv::cvtColor(m, colour, m.channels() == 4 ? cv::COLOR_BGRA2GRAY : cv::COLOR_BGR2GRAY);
      }
    }
    cv::Mat sized = colour;
    if (colour.rows != height_ || colour.cols != width_) {
      const bool shrink = colour.rows > height_ && colour.cols > width_;
      cv::resize(colour, sized, cv::Size(width_, height_), 0, 0,
                 shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
    }
    if (!sized.isContinuous()) sized = sized.clone();
    row.assign(sized.data, sized.data + sized.total() * sized.elemSize());
  }

 private:
  ConvertOptions o_;
  int height_ = 0, width_ = 0;
};

cv::Mat readImage(const fs::path& path, const std::string& what) {
  cv::Mat m = cv::imread(path.string(), cv::IMREAD_UNCHANGED);
  GEMEL_THROW_IF_NOT(!m.empty(), InputError,
                     "{} ({}): cannot be decoded as an image; remove or replace it", path.string(),
                     what);
  if (m.depth() != CV_8U) {  // 16-bit PNGs: scale to 8 bits
    cv::Mat eight;
    m.convertTo(eight, CV_8U, m.depth() == CV_16U ? 1.0 / 257.0 : 1.0);
    m = eight;
  }
  return m;
}

// Rank-0 progress for long conversions: count, rate and ETA every second or so.
class Progress {
 public:
  Progress(std::string what, int64_t total) : what_(std::move(what)), total_(total) {}
  void step() {
    ++done_;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(1) && done_ != total_) return;
    last_ = now;
    const double s = std::chrono::duration<double>(now - start_).count();
    const double rate = done_ / std::max(s, 1e-9);
    log::progress("data",
                  format("{}: {}/{} images, {} images/s, ETA {} s", what_, done_, total_,
                         static_cast<int64_t>(rate), static_cast<int64_t>((total_ - done_) / rate)),
                  done_ == total_);
  }

 private:
  std::string what_;
  int64_t total_, done_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_ = start_;
};

// One YOLO annotation file -> boxes in output pixels. Lines: class xc yc w h (normalised).
std::vector<Box> readYoloBoxes(const fs::path& path, int64_t classes, int height, int width) {
  std::ifstream in(path);
  GEMEL_THROW_IF_NOT(in.good(), InputError, "{}: cannot read annotation file", path.string());
  std::vector<Box> boxes;
  std::string line;
  int number = 0;
  constexpr double kSlack = 1e-3;  // labelling tools round; a box may poke out by this much
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::istringstream ls(line);
    double c = -1, xc, yc, w, h;
    std::string extra;
    if (!(ls >> c >> xc >> yc >> w >> h) || (ls >> extra)) {
      throw InputError(
          format("{}:{}: expected 'class x_center y_center width height' "
                 "(normalised), got '{}'",
                 path.string(), number, line));
    }
    if (c < 0 || c != std::floor(c) || c >= classes) {
      throw InputError(format("{}:{}: class {} is not one of the {} classes (0..{})", path.string(),
                              number, c, classes, classes - 1));
    }
    const double x1 = xc - w / 2, x2 = xc + w / 2, y1 = yc - h / 2, y2 = yc + h / 2;
    if (w <= 0 || h <= 0 || x1 < -kSlack || y1 < -kSlack || x2 > 1 + kSlack || y2 > 1 + kSlack) {
      throw InputError(
          format("{}:{}: box ({} {} {} {}) is empty or outside the image; YOLO "
                 "coordinates are normalised to 0..1",
                 path.string(), number, xc, yc, w, h));
    }
    Box b;
    b.cls = static_cast<float>(c);
    b.x1 = static_cast<float>(std::clamp(x1, 0.0, 1.0) * width);
    b.x2 = static_cast<float>(std::clamp(x2, 0.0, 1.0) * width);
    b.y1 = static_cast<float>(std::clamp(y1, 0.0, 1.0) * height);
    b.y2 = static_cast<float>(std::clamp(y2, 0.0, 1.0) * height);
    if (b.x2 > b.x1 && b.y2 > b.y1) boxes.push_back(b);
  }
  return boxes;
}

fs::path requireDir(const fs::path& dir, const std::string& what) {
  GEMEL_THROW_IF_NOT(fs::is_directory(dir), InputError, "{}: missing directory ({})", dir.string(),
                     what);
  return dir;
}

}  // namespace

std::vector<int64_t> convertImageFolder(const ImageFolderOptions& o, const std::string& out) {
  const fs::path root = requireDir(o.root, "expected <name>_CL/{train,val}/<class>/<image>");
  requireDir(root / "train", "the train split of an image folder");
  DatasetInfo info;
  for (const auto& e : fs::directory_iterator(root / "train")) {
    if (e.is_directory()) info.classes.push_back(e.path().filename().string());
  }
  std::sort(info.classes.begin(), info.classes.end());  // as torchvision's ImageFolder
  GEMEL_THROW_IF_NOT(!info.classes.empty(), InputError,
                     "{}: no class directories; expected train/<class>/<image>",
                     (root / "train").string());
  // Every image, per split, in (class, file name) order.
  struct Item {
    fs::path path;
    int64_t label;
  };
  std::map<std::string, std::vector<Item>> items;
  int64_t total = 0, skipped = 0;
  for (const auto& split : kSplits) {
    if (!fs::is_directory(root / split)) continue;
    for (const auto& e : fs::directory_iterator(root / split)) {
      if (!e.is_directory()) continue;
      const auto name = e.path().filename().string();
      const auto it = std::find(info.classes.begin(), info.classes.end(), name);
      GEMEL_THROW_IF_NOT(it != info.classes.end(), InputError,
                         "{}: class '{}' does not appear in train/; every {} class must have "
                         "training images",
                         e.path().string(), name, split);
    }
    for (std::size_t label = 0; label < info.classes.size(); ++label) {
      const auto dir = root / split / info.classes[label];
      if (!fs::is_directory(dir)) continue;
      for (const auto& f : sortedFiles(dir)) {
        if (!isImageFile(f)) {
          ++skipped;
          continue;
        }
        items[split].push_back({f, static_cast<int64_t>(label)});
        ++total;
      }
    }
  }
  GEMEL_THROW_IF_NOT(!items["train"].empty(), InputError, "{}: no images (.jpg, .png, .bmp)",
                     (root / "train").string());
  if (skipped > 0) log::warn("data", "{}: skipped {} files that are not images", o.root, skipped);

  Framer framer(o);
  framer.begin(readImage(items["train"][0].path, "train image 0"), info);
  DatasetWriter writer(out, info);
  Progress progress(out, total);
  std::vector<uint8_t> row;
  for (const auto& [split, list] : items) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      const auto what = format("{} image {}", split, i);
      framer.convert(readImage(list[i].path, what), list[i].path.string() + " (" + what + ")", row);
      writer.addClassified(split, row.data(), list[i].label);
      progress.step();
    }
  }
  std::vector<int64_t> counts = {writer.count("train"), writer.count("val")};
  writer.commit();
  return counts;
}

std::vector<int64_t> convertYolo(const YoloOptions& o, const std::string& out) {
  const fs::path root = requireDir(o.root, "expected <name>_OD/{train,val}/{images,annotations}");
  DatasetInfo info;
  info.kind = DatasetKind::kDetection;
  info.classes = o.classes;
  if (info.classes.empty() && !o.names.empty()) info.classes = readClassNames(o.names);
  for (const char* candidate : {"classes.txt", "obj.names"}) {
    if (info.classes.empty() && fs::exists(root / candidate))
      info.classes = readClassNames((root / candidate).string());
  }
  GEMEL_THROW_IF_NOT(!info.classes.empty(), UsageError,
                     "{}: no class names; pass --classes a,b,c or --names FILE, or put "
                     "classes.txt (one name per line) in the folder",
                     o.root);
  std::map<std::string, std::vector<fs::path>> images;
  int64_t total = 0;
  for (const auto& split : kSplits) {
    if (!fs::is_directory(root / split)) continue;
    requireDir(root / split / "images", "YOLO images");
    requireDir(root / split / "annotations", "YOLO annotation files, one <image stem>.txt each");
    for (const auto& f : sortedFiles(root / split / "images")) {
      if (isImageFile(f)) images[split].push_back(f), ++total;
    }
  }
  GEMEL_THROW_IF_NOT(!images["train"].empty(), InputError, "{}: no images",
                     (root / "train" / "images").string());
  Framer framer(o);
  framer.begin(readImage(images["train"][0], "train image 0"), info);
  DatasetWriter writer(out, info);
  Progress progress(out, total);
  std::vector<uint8_t> row;
  int64_t unannotated = 0;
  for (const auto& [split, list] : images) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      const auto what = format("{} image {}", split, i);
      const auto image = readImage(list[i], what);
      framer.convert(image, list[i].string() + " (" + what + ")", row);
      const auto annotation = root / split / "annotations" / (list[i].stem().string() + ".txt");
      std::vector<Box> boxes;
      if (fs::exists(annotation)) {
        boxes = readYoloBoxes(annotation, static_cast<int64_t>(info.classes.size()),
                              framer.height(), framer.width());
      } else {
        ++unannotated;  // YOLO's convention: no file, no objects
      }
      writer.addDetected(split, row.data(), boxes);
      progress.step();
    }
  }
  if (unannotated > 0) {
    log::warn("data", "{}: {} images have no annotation file and are stored with no boxes", o.root,
              unannotated);
  }
  std::vector<int64_t> counts = {writer.count("train"), writer.count("val")};
  writer.commit();
  return counts;
}

namespace {

// The frame number a file name stands for: its last run of digits ("frame_000120.txt" -> 120).
bool frameNumber(const std::string& stem, int64_t& frame) {
  const auto end = stem.find_last_of("0123456789");
  if (end == std::string::npos) return false;
  auto begin = end;
  while (begin > 0 && std::isdigit(static_cast<unsigned char>(stem[begin - 1]))) --begin;
  frame = std::stoll(stem.substr(begin, end - begin + 1));
  return true;
}

// Per-frame CSV: "frame,label" lines, an optional header; label is a class name.
std::map<int64_t, std::string> readFrameLabels(const std::string& path) {
  std::ifstream in(path);
  GEMEL_THROW_IF_NOT(in.good(), InputError, "{}: cannot read the frame-label CSV", path);
  std::map<int64_t, std::string> labels;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    const auto fields = splitList(line);
    if (fields.empty()) continue;
    int64_t frame = -1;
    std::size_t used = 0;
    try {
      frame = std::stoll(fields[0], &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != fields[0].size() || fields.size() != 2 || frame < 0) {
      if (number == 1 && fields.size() == 2) continue;  // header
      throw InputError(
          format("{}:{}: expected 'frame,label' (a frame number and a class name), got '{}'", path,
                 number, line));
    }
    GEMEL_THROW_IF_NOT(labels.emplace(frame, fields[1]).second, InputError,
                       "{}:{}: frame {} is labelled twice", path, number, frame);
  }
  GEMEL_THROW_IF_NOT(!labels.empty(), InputError, "{}: no labelled frames", path);
  return labels;
}

// The frames on the stride that carry labels (classification: a CSV) or boxes (detection:
// YOLO files named by frame number), and the dataset's kind and classes.
void labelledFrames(const VideoOptions& o, DatasetInfo& info,
                    std::map<int64_t, int64_t>& frame_label,
                    std::map<int64_t, fs::path>& frame_boxes) {
  if (!o.labels.empty()) {
    const auto labels = readFrameLabels(o.labels);
    info.classes = o.classes;
    if (info.classes.empty()) {
      std::set<std::string> names;
      for (const auto& [f, name] : labels) names.insert(name);
      info.classes.assign(names.begin(), names.end());
    }
    for (const auto& [f, name] : labels) {
      const auto it = std::find(info.classes.begin(), info.classes.end(), name);
      GEMEL_THROW_IF_NOT(it != info.classes.end(), InputError,
                         "{}: frame {} has label '{}', which is not in --classes", o.labels, f,
                         name);
      if (f % o.stride == 0) frame_label[f] = it - info.classes.begin();
    }
  } else {
    info.kind = DatasetKind::kDetection;
    info.classes = o.classes;
    if (info.classes.empty() && !o.names.empty()) info.classes = readClassNames(o.names);
    GEMEL_THROW_IF_NOT(!info.classes.empty(), UsageError,
                       "detection from video needs class names: --classes a,b or --names FILE");
    requireDir(o.annotations, "YOLO annotation files named by frame number");
    for (const auto& f : sortedFiles(o.annotations)) {
      int64_t frame = 0;
      if (f.extension() == ".txt" && frameNumber(f.stem().string(), frame) &&
          frame % o.stride == 0) {
        GEMEL_THROW_IF_NOT(frame_boxes.emplace(frame, f).second, InputError,
                           "{}: two annotation files name frame {}", o.annotations, frame);
      }
    }
  }
}

}  // namespace

std::vector<int64_t> convertVideo(const VideoOptions& o, const std::string& out) {
  GEMEL_THROW_IF_NOT(o.stride >= 1, UsageError, "--stride must be at least 1, not {}", o.stride);
  GEMEL_THROW_IF_NOT(o.val_fraction > 0 && o.val_fraction < 1, UsageError,
                     "--val-fraction must be in (0, 1), not {}", o.val_fraction);
  GEMEL_THROW_IF_NOT(o.labels.empty() != o.annotations.empty(), UsageError,
                     "give exactly one of --labels CSV (classification) and --annotations DIR "
                     "(detection, YOLO files named by frame number)");
  GEMEL_THROW_IF_NOT(fs::exists(o.video), InputError, "{}: missing video file", o.video);
  cv::VideoCapture capture(o.video);
  GEMEL_THROW_IF_NOT(capture.isOpened(), InputError,
                     "{}: cannot be opened as a video (not a video, or a codec OpenCV lacks)",
                     o.video);
  const int64_t reported = static_cast<int64_t>(capture.get(cv::CAP_PROP_FRAME_COUNT));

  DatasetInfo info;
  std::map<int64_t, int64_t> frame_label;   // classification: frame -> label
  std::map<int64_t, fs::path> frame_boxes;  // detection: frame -> annotation file
  labelledFrames(o, info, frame_label, frame_boxes);
  std::vector<int64_t> wanted;
  for (const auto& [f, l] : frame_label) wanted.push_back(f);
  for (const auto& [f, p] : frame_boxes) wanted.push_back(f);
  GEMEL_THROW_IF_NOT(!wanted.empty(), InputError,
                     "{}: no labelled frame falls on the stride {} (frames 0, {}, {}, ...)",
                     o.labels.empty() ? o.annotations : o.labels, o.stride, o.stride, 2 * o.stride);
  // Frames close in time look alike, so val is the tail of the video, not a random sample.
  GEMEL_THROW_IF_NOT(wanted.size() >= 2, InputError,
                     "{}: only one labelled frame on the stride; a dataset needs a train and a "
                     "val frame",
                     o.labels.empty() ? o.annotations : o.labels);
  const auto n_val = std::max<std::size_t>(
      1, static_cast<std::size_t>(std::floor(wanted.size() * o.val_fraction)));
  const int64_t first_val = wanted[wanted.size() - n_val];

  Framer framer(o);
  std::unique_ptr<DatasetWriter> writer;
  Progress progress(out, static_cast<int64_t>(wanted.size()));
  std::vector<uint8_t> row;
  cv::Mat frame;
  std::size_t next = 0;
  int64_t index = 0;
  for (; next < wanted.size(); ++index) {
    if (!capture.read(frame) || frame.empty()) break;
    if (index != wanted[next]) continue;
    ++next;
    if (!writer) {
      framer.begin(frame, info);
      writer = std::make_unique<DatasetWriter>(out, info);
    }
    const std::string split = index >= first_val ? "val" : "train";
    framer.convert(frame, format("{} frame {}", o.video, index), row);
    if (info.kind == DatasetKind::kClassification) {
      writer->addClassified(split, row.data(), frame_label.at(index));
    } else {
      writer->addDetected(
          split, row.data(),
          readYoloBoxes(frame_boxes.at(index), static_cast<int64_t>(info.classes.size()),
                        framer.height(), framer.width()));
    }
    progress.step();
  }
  GEMEL_THROW_IF_NOT(next == wanted.size(), InputError,
                     "{}: frame {} is labelled but the video ends after {} frames (reported: {})",
                     o.video, wanted[next], index, reported);
  std::vector<int64_t> counts = {writer->count("train"), writer->count("val")};
  writer->commit();
  return counts;
}

#else  // !GEMEL_HAVE_OPENCV

namespace {
[[noreturn]] void noOpenCV(const char* what) {
  throw UsageError(
      format("{} needs OpenCV, and this gemel-data was built without it; install "
             "libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev "
             "libopencv-videoio-dev and rebuild",
             what));
}
}  // namespace

std::vector<int64_t> convertImageFolder(const ImageFolderOptions&, const std::string&) {
  noOpenCV("imagefolder");
}
std::vector<int64_t> convertYolo(const YoloOptions&, const std::string&) { noOpenCV("yolo"); }
std::vector<int64_t> convertVideo(const VideoOptions&, const std::string&) { noOpenCV("video"); }

#endif

bool haveOpenCV() {
#ifdef GEMEL_HAVE_OPENCV
  return true;
#else
  return false;
#endif
}

std::string openCVVersion() {
#ifdef GEMEL_HAVE_OPENCV
  return cv::getVersionString();
#else
  return "";
#endif
}

}  // namespace gemel::data
