// The street workload: three cameras built from the real data Debian's opencv-doc ships.
//   street_near_resnet18   patches of the lower band of vtest.avi's frames: person or empty;
//   street_far_resnet18    patches of the upper band: person or empty;
//   digits_resnet34        the handwritten digits sheet (digits.png, 5000 cells, 10 classes).
// The patch labels come from a background model (the per-pixel median of the video, which a
// static camera makes the empty scene), as video-analytics labels often come from a heavier
// model than the one deployed. The last 20% of the frames (in time) validate.
#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <memory>

#include "gemel/config/workload.h"
#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "gemel/core/format.h"
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

#ifdef GEMEL_HAVE_OPENCV
namespace {

// Per-channel mean and standard deviation of a dataset's train split, in [0, 1].
struct Moments {
  std::array<double, 3> sum{}, sq{};
  int64_t n = 0;
  void add(const uint8_t* rgb, int64_t pixels) {
    for (int64_t p = 0; p < pixels; ++p) {
      for (int c = 0; c < 3; ++c) {
        const double v = rgb[3 * p + c] / 255.0;
        sum[c] += v;
        sq[c] += v * v;
      }
    }
    n += pixels;
  }
  std::string yaml() const {
    std::array<double, 3> mean{}, sd{};
    for (int c = 0; c < 3; ++c) {
      mean[c] = sum[c] / std::max<int64_t>(n, 1);
      sd[c] = std::sqrt(std::max(sq[c] / std::max<int64_t>(n, 1) - mean[c] * mean[c], 1e-6));
    }
    return format("mean: [{}, {}, {}], std: [{}, {}, {}]", formatFixed(mean[0], 3),
                  formatFixed(mean[1], 3), formatFixed(mean[2], 3), formatFixed(sd[0], 3),
                  formatFixed(sd[1], 3), formatFixed(sd[2], 3));
  }
};

Moments trainMoments(const std::string& path) {
  const DatasetReader r(path);
  Moments m;
  std::vector<uint8_t> image(r.info().imageBytes());
  for (int64_t i = 0; i < r.size("train"); ++i) {
    r.readImages("train", i, 1, image.data());
    m.add(image.data(), r.info().height * r.info().width);
  }
  return m;
}

// The moving pixels of every frame (grey, at a quarter of the resolution): those that differ
// from the background, the per-pixel median of every frame (a static camera's empty scene).
std::vector<cv::Mat> motionMasks(const std::string& video) {
  cv::VideoCapture capture(video);
  GEMEL_THROW_IF_NOT(capture.isOpened(), InputError,
                     "{}: cannot be opened as a video (not a video, or a codec OpenCV lacks)",
                     video);
  std::vector<cv::Mat> frames;
  cv::Mat frame, grey, small;
  while (capture.read(frame) && !frame.empty()) {
    cv::cvtColor(frame, grey, cv::COLOR_BGR2GRAY);
    cv::resize(grey, small, cv::Size(frame.cols / 4, frame.rows / 4), 0, 0, cv::INTER_AREA);
    frames.push_back(small.clone());
  }
  GEMEL_THROW_IF_NOT(frames.size() >= 10, InputError,
                     "{}: only {} frames; the street workload needs a video of at least 10", video,
                     frames.size());
  const int h = frames[0].rows, w = frames[0].cols;
  cv::Mat background(h, w, CV_8UC1);
  std::vector<uint8_t> column(frames.size());
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (std::size_t f = 0; f < frames.size(); ++f) column[f] = frames[f].at<uint8_t>(y, x);
      std::nth_element(column.begin(), column.begin() + column.size() / 2, column.end());
      background.at<uint8_t>(y, x) = column[column.size() / 2];
    }
  }
  const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(3, 3));
  cv::Mat diff;
  for (auto& f : frames) {
    cv::absdiff(f, background, diff);
    cv::threshold(diff, f, 25, 255, cv::THRESH_BINARY);
    cv::morphologyEx(f, f, cv::MORPH_OPEN, kernel);
  }
  return frames;
}

// digits.png: 50 rows x 100 columns of 20x20 cells, rows 5d..5d+4 holding digit d. Per digit,
// the first 400 cells train and the last 100 validate.
std::vector<int64_t> convertDigits(const std::string& sheet_path, int size,
                                   const std::string& out) {
  const cv::Mat sheet = cv::imread(sheet_path, cv::IMREAD_GRAYSCALE);
  GEMEL_THROW_IF_NOT(!sheet.empty() && sheet.cols == 2000 && sheet.rows == 1000, InputError,
                     "{}: expected OpenCV's 2000x1000 sheet of 20x20 digits (opencv-doc)",
                     sheet_path);
  DatasetInfo info;
  for (int d = 0; d < 10; ++d) info.classes.push_back(std::to_string(d));
  info.height = info.width = size;
  info.channels = 3;
  DatasetWriter writer(out, info);
  cv::Mat sized, rgb;
  for (int d = 0; d < 10; ++d) {
    for (int k = 0; k < 500; ++k) {
      const cv::Mat cell = sheet(cv::Rect((k % 100) * 20, (5 * d + k / 100) * 20, 20, 20));
      cv::resize(cell, sized, cv::Size(size, size), 0, 0, cv::INTER_LINEAR);
      cv::cvtColor(sized, rgb, cv::COLOR_GRAY2RGB);
      rgb = rgb.clone();
      writer.addClassified(k < 400 ? "train" : "val", rgb.data, d);
    }
  }
  std::vector<int64_t> counts = {writer.count("train"), writer.count("val")};
  writer.commit();
  return counts;
}

// One camera of the street: a band of the frame cut into `patches` side by side, each patch a
// sample: "person" when at least `busy` of its pixels move, "empty" when under `still`, left out
// in between (a person at the edge, or a shadow). The last 20% of the frames (in time) validate.
struct Camera {
  std::string name;
  int top, bottom;  // the band's rows, in source pixels
  int patches;
  double still, busy;
};

// Every camera's dataset in one pass over the video (`paths` parallel to `cameras`).
void convertCameras(const std::string& video, const std::vector<cv::Mat>& masks,
                    const std::vector<Camera>& cameras, int size,
                    const std::vector<std::string>& paths) {
  cv::VideoCapture capture(video);
  DatasetInfo info;
  info.classes = {"empty", "person"};
  info.height = info.width = size;
  info.channels = 3;
  std::vector<std::unique_ptr<DatasetWriter>> writers;
  for (const auto& path : paths) writers.push_back(std::make_unique<DatasetWriter>(path, info));
  const int64_t first_val = static_cast<int64_t>(masks.size()) * 4 / 5;
  cv::Mat frame, sized, rgb;
  for (int64_t f = 0; f < static_cast<int64_t>(masks.size()) && capture.read(frame); ++f) {
    const int scale = frame.cols / masks[f].cols;
    for (std::size_t c = 0; c < cameras.size(); ++c) {
      const auto& cam = cameras[c];
      const int width = frame.cols / cam.patches;
      for (int p = 0; p < cam.patches; ++p) {
        const cv::Rect src(p * width, cam.top, width, cam.bottom - cam.top);
        const cv::Rect low(src.x / scale, src.y / scale, src.width / scale, src.height / scale);
        const double moving = cv::countNonZero(masks[f](low)) / double(low.area());
        if (moving > cam.still && moving < cam.busy) continue;
        cv::resize(frame(src), sized, cv::Size(size, size), 0, 0, cv::INTER_AREA);
        cv::cvtColor(sized, rgb, cv::COLOR_BGR2RGB);
        rgb = rgb.clone();
        writers[c]->addClassified(f >= first_val ? "val" : "train", rgb.data, moving >= cam.busy);
      }
    }
  }
  for (auto& w : writers) w->commit();
}

// Per split, how many samples of each class.
std::string classCounts(const std::string& path) {
  const DatasetReader r(path);
  std::string out;
  for (const auto* split : {"train", "val"}) {
    std::vector<int64_t> n(r.info().classes.size(), 0);
    for (const auto l : r.labels(split)) ++n[l];
    out += format("{}{}:", out.empty() ? "" : "; ", split);
    for (std::size_t c = 0; c < n.size(); ++c) out += format(" {} {}", n[c], r.info().classes[c]);
  }
  return out;
}

}  // namespace

std::string buildStreet(const std::string& out_dir, const std::string& opencv_data, int size) {
  GEMEL_THROW_IF_NOT(size >= 16, UsageError, "--size {} is too small (at least 16)", size);
  const auto video = (fs::path(opencv_data) / "vtest.avi").string();
  const auto digits = (fs::path(opencv_data) / "digits.png").string();
  for (const auto& f : {video, digits}) {
    GEMEL_THROW_IF_NOT(fs::exists(f), InputError, "{}: missing; install Debian's opencv-doc", f);
  }
  fs::create_directories(out_dir);
  log::info("data", "street: the background and moving pixels of {}", video);
  const auto masks = motionMasks(video);
  std::string yaml =
      "# The street workload (gemel-data street): three cameras from Debian's opencv-doc.\n"
      "# street_near / street_far: patches of vtest.avi's frames (near: the lower band, far: the\n"
      "# upper one), 'person' or 'empty' by a background model's moving pixels.\n"
      "# digits: OpenCV's sheet of 5000 handwritten digits.\n"
      "name: street_cameras\n"
      "datasets_dir: .\n"
      "defaults:\n"
      "  accuracy_target: 0.95\n"
      "  batch_size: 32\n"
      "search:\n"
      "  strategy: greedy\n"
      "  epochs_per_trial: 30\n"
      "  seconds_per_trial: 150\n"
      "  lr: 0.02\n"
      "tasks:\n";
  auto task_yaml = [&](const std::string& name, const std::string& arch, std::size_t classes,
                       const std::string& file) {
    return format(
        "  - name: {}\n    arch: {}\n    num_classes: {}\n    image_size: {}\n"
        "    transforms: {}\n",
        name, arch, classes, size,
        "{" + trainMoments(file).yaml() + format(", hflip: true, crop_padding: {}}", size / 16));
  };
  const std::vector<Camera> cameras = {
      {"street_near_resnet18", 280, 472, 6, 0.005, 0.04},
      {"street_far_resnet18", 120, 280, 6, 0.005, 0.04},
  };
  std::vector<std::string> paths;
  for (const auto& cam : cameras) {
    paths.push_back(
        (fs::path(out_dir) /
         config::defaultDatasetName(cam.name, "resnet18", config::TaskKind::kClassification))
            .string());
  }
  convertCameras(video, masks, cameras, size, paths);
  for (std::size_t c = 0; c < cameras.size(); ++c) {
    log::info("data", "street: {}: {}", fs::path(paths[c]).filename().string(),
              classCounts(paths[c]));
    yaml += task_yaml(cameras[c].name, "resnet18", 2, paths[c]);
  }
  const std::string digits_task = "digits_resnet34";
  const auto file =
      config::defaultDatasetName(digits_task, "resnet34", config::TaskKind::kClassification);
  const auto path = (fs::path(out_dir) / file).string();
  convertDigits(digits, size, path);
  log::info("data", "street: {}: {}", file, classCounts(path));
  yaml += task_yaml(digits_task, "resnet34", 10, path);
  const auto yaml_path = (fs::path(out_dir) / "street.yaml").string();
  writeFileAtomic(yaml_path, yaml.data(), yaml.size());
  return yaml_path;
}

#else  // !GEMEL_HAVE_OPENCV

std::string buildStreet(const std::string&, const std::string&, int) {
  throw UsageError(
      "street needs OpenCV, and this gemel-data was built without it; install "
      "libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev libopencv-videoio-dev "
      "and rebuild");
}

#endif

}  // namespace gemel::data
