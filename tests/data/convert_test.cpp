// gemel-data's OpenCV converters, run as a user runs them, on real inputs from Debian's
// opencv-doc: the handwritten digits sheet (image folders) and the vtest.avi surveillance video
// (YOLO folders and video frames). Each result is compared pixel by pixel with OpenCV's own
// decoding of the same source.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <sstream>

#include "gemel/config/parser.h"
#include "gemel/core/format.h"
#include "gemel/data/dataset.h"
#include "opencv_samples.h"
#include "test_support.h"

namespace gemel::data {
namespace {

namespace fs = std::filesystem;
using gemel::testing::CommandResult;
using gemel::testing::run;
using gemel::testing::shellQuote;
using gemel::testing::TempDir;
using gemel::testing::writeText;

using gemel::testing::digitCell;
using gemel::testing::kDigitsSheet;
using gemel::testing::kOpenCVData;
using gemel::testing::kStreetVideo;

CommandResult gemelData(const std::string& args) {
  return run(shellQuote(GEMEL_DATA_BINARY) + " " + args);
}

// The real inputs are a CI dependency (opencv-doc): fail, do not skip, when they are missing.
void requireSources() {
  ASSERT_TRUE(fs::exists(kDigitsSheet)) << kDigitsSheet << " missing: install opencv-doc";
  ASSERT_TRUE(fs::exists(kStreetVideo)) << kStreetVideo << " missing: install opencv-doc";
}

std::vector<uint8_t> rgbBytes(const cv::Mat& bgr, int height, int width) {
  cv::Mat rgb, sized;
  cv::cvtColor(bgr, rgb, bgr.channels() == 1 ? cv::COLOR_GRAY2RGB : cv::COLOR_BGR2RGB);
  if (rgb.rows == height && rgb.cols == width) {
    sized = rgb;
  } else {
    const bool shrink = rgb.rows > height && rgb.cols > width;
    cv::resize(rgb, sized, cv::Size(width, height), 0, 0,
               shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
  }
  sized = sized.clone();
  return std::vector<uint8_t>(sized.data, sized.data + sized.total() * 3);
}

std::vector<uint8_t> stored(const DatasetReader& r, const std::string& split, int64_t i) {
  std::vector<uint8_t> out(r.info().imageBytes());
  r.readImages(split, i, 1, out.data());
  return out;
}

TEST(ImageFolder, DigitsRoundTrip) {
  requireSources();
  const cv::Mat sheet = cv::imread(kDigitsSheet, cv::IMREAD_GRAYSCALE);
  ASSERT_EQ(sheet.cols, 2000);
  TempDir dir;
  const fs::path root = dir.file("digits_CL");
  // Digits 3, 7 and 1 (their sorted names give labels 0, 1, 2); 8 train + 3 val each, as PNG.
  const std::vector<int> digits = {3, 7, 1};
  for (const int d : digits) {
    for (const auto& [split, n] : {std::pair<std::string, int>{"train", 8}, {"val", 3}}) {
      fs::create_directories(root / split / std::to_string(d));
      for (int k = 0; k < n; ++k) {
        const int index = split == "train" ? k : 100 + k;
        cv::imwrite((root / split / std::to_string(d) / format("{}.png", index)).string(),
                    digitCell(sheet, d, index));
      }
    }
  }
  writeText((root / "train" / "README.txt").string(), "not an image; skipped\n");

  // Grey, source size: every pixel exactly as the PNG holds it.
  const auto grey = dir.file("grey.h5");
  auto r = gemelData(
      format("imagefolder --src {} --out {} --channels 1", shellQuote(root), shellQuote(grey)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("24 train and 9 val"), std::string::npos) << r.output;
  {
    const DatasetReader reader(grey);
    reader.verify();
    EXPECT_EQ(reader.info().classes, (std::vector<std::string>{"1", "3", "7"}));
    EXPECT_EQ(reader.info().height, 20);
    EXPECT_EQ(reader.info().channels, 1);
    for (const auto& split : {std::string("train"), std::string("val")}) {
      const int per = split == "train" ? 8 : 3;
      ASSERT_EQ(reader.size(split), 3 * per);
      for (int64_t i = 0; i < reader.size(split); ++i) {
        const int label = static_cast<int>(i / per), k = static_cast<int>(i % per);
        const int d = std::vector<int>{1, 3, 7}[label];
        ASSERT_EQ(reader.labels(split)[i], label) << split << " " << i;
        const cv::Mat expect = digitCell(sheet, d, split == "train" ? k : 100 + k);
        const auto got = stored(reader, split, i);
        ASSERT_EQ(std::memcmp(got.data(), expect.data, got.size()), 0) << split << " image " << i;
      }
    }
  }

  // RGB, resized to 32x32: OpenCV's bilinear enlargement of each digit.
  const auto rgb = dir.file("rgb.h5");
  r = gemelData(
      format("imagefolder --src {} --out {} --size 32", shellQuote(root), shellQuote(rgb)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const DatasetReader reader(rgb);
  EXPECT_EQ(reader.info().height, 32);
  EXPECT_EQ(reader.info().channels, 3);
  EXPECT_EQ(stored(reader, "val", 4), rgbBytes(digitCell(sheet, 3, 101), 32, 32));

  // An undecodable image: one error naming it; the old dataset at the target is kept.
  writeText((root / "val" / "7" / "broken.png").string(), "this is not a PNG");
  r = gemelData(
      format("imagefolder --src {} --out {} --size 32", shellQuote(root), shellQuote(rgb)));
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("broken.png"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cannot be decoded"), std::string::npos) << r.output;
  EXPECT_EQ(DatasetReader(rgb).size("train"), 24);
  fs::remove(root / "val" / "7" / "broken.png");

  // A val class with no training images.
  fs::create_directories(root / "val" / "9");
  r = gemelData(
      format("imagefolder --src {} --out {}", shellQuote(root), shellQuote(dir.file("x.h5"))));
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("class '9'"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir.file("x.h5")));
}

// Reads frames 0..last of vtest.avi as OpenCV decodes them.
std::vector<cv::Mat> videoFrames(int last) {
  cv::VideoCapture cap(kStreetVideo);
  std::vector<cv::Mat> frames;
  cv::Mat f;
  for (int i = 0; i <= last && cap.read(f); ++i) frames.push_back(f.clone());
  return frames;
}

TEST(Yolo, VideoFramesRoundTrip) {
  requireSources();
  const auto frames = videoFrames(50);
  ASSERT_EQ(frames.size(), 51u);
  TempDir dir;
  const fs::path root = dir.file("people_OD");
  // (frame, split, YOLO lines): normalised centre and size.
  struct Item {
    int frame;
    std::string split, lines;
  };
  const std::vector<Item> items = {
      {0, "train", "0 0.5 0.5 0.2 0.4\n1 0.1 0.2 0.1 0.1\n"},
      {10, "train", "1 0.75 0.25 0.5 0.5\n"},
      {20, "train", ""},   // annotated, no objects
      {30, "train", "-"},  // no annotation file at all
      {40, "val", "0 0.3 0.6 0.2 0.3\n"},
      {50, "val", "\n0 0.9 0.9 0.2 0.2\n"},
  };
  for (const auto& s : {"train", "val"}) {
    fs::create_directories(root / s / "images");
    fs::create_directories(root / s / "annotations");
  }
  for (const auto& it : items) {
    const auto stem = format("frame_{}", it.frame);
    cv::imwrite((root / it.split / "images" / (stem + ".png")).string(), frames[it.frame]);
    if (it.lines != "-")
      writeText((root / it.split / "annotations" / (stem + ".txt")).string(), it.lines);
  }
  writeText((root / "classes.txt").string(), "person\nbag\n");
  const auto out = dir.file("people.h5");
  auto r = gemelData(
      format("yolo --src {} --out {} --height 144 --width 192", shellQuote(root), shellQuote(out)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("1 images have no annotation file"), std::string::npos) << r.output;
  const DatasetReader reader(out);
  reader.verify();
  EXPECT_EQ(reader.info().classes, (std::vector<std::string>{"person", "bag"}));
  ASSERT_EQ(reader.size("train"), 4);
  ASSERT_EQ(reader.size("val"), 2);
  // Files sort as frame_0, frame_10, frame_20, frame_30 (train) and frame_40, frame_50 (val).
  for (std::size_t k = 0; k < items.size(); ++k) {
    const auto& it = items[k];
    const int64_t i = it.split == "train" ? static_cast<int64_t>(k) : static_cast<int64_t>(k) - 4;
    EXPECT_EQ(stored(reader, it.split, i), rgbBytes(frames[it.frame], 144, 192)) << it.frame;
    std::vector<Box> expect;
    std::istringstream lines(it.lines == "-" ? "" : it.lines);
    float c, xc, yc, w, h;
    while (lines >> c >> xc >> yc >> w >> h) {
      expect.push_back({c, std::max(0.0f, xc - w / 2) * 192, std::max(0.0f, yc - h / 2) * 144,
                        std::min(1.0f, xc + w / 2) * 192, std::min(1.0f, yc + h / 2) * 144});
    }
    const auto boxes = reader.boxes(it.split, i);
    ASSERT_EQ(boxes.size(), expect.size()) << "frame " << it.frame;
    for (std::size_t b = 0; b < boxes.size(); ++b) {
      EXPECT_EQ(boxes[b].cls, expect[b].cls);
      EXPECT_NEAR(boxes[b].x1, expect[b].x1, 1e-3);
      EXPECT_NEAR(boxes[b].y1, expect[b].y1, 1e-3);
      EXPECT_NEAR(boxes[b].x2, expect[b].x2, 1e-3);
      EXPECT_NEAR(boxes[b].y2, expect[b].y2, 1e-3);
    }
  }

  // A box that leaves the image, and an unknown class: errors naming file and line.
  const auto bad = (root / "val" / "annotations" / "frame_50.txt").string();
  writeText(bad, "0 0.5 0.5 0.1 0.1\n0 0.95 0.5 0.3 0.1\n");
  r = gemelData(format("yolo --src {} --out {}", shellQuote(root), shellQuote(out)));
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find(bad + ":2: box"), std::string::npos) << r.output;
  writeText(bad, "2 0.5 0.5 0.1 0.1\n");
  r = gemelData(format("yolo --src {} --out {}", shellQuote(root), shellQuote(out)));
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find(bad + ":1: class 2"), std::string::npos) << r.output;
  // The earlier dataset survives both failures.
  EXPECT_EQ(DatasetReader(out).size("val"), 2);
}

TEST(Video, ClassifiedFramesAtStride) {
  requireSources();
  TempDir dir;
  // Frames 0, 10, ..., 790 labelled by time; odd frames too, which stride 10 must drop.
  std::string csv = "frame,label\n";
  for (int f = 0; f < 795; f += 5) csv += format("{},{}\n", f, f < 400 ? "early" : "late");
  writeText(dir.file("labels.csv"), csv);
  const auto out = dir.file("video.h5");
  auto r = gemelData(format("video --video {} --labels {} --stride 10 --size 64 --out {}",
                            shellQuote(kStreetVideo), shellQuote(dir.file("labels.csv")),
                            shellQuote(out)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const DatasetReader reader(out);
  reader.verify();
  EXPECT_EQ(reader.info().classes, (std::vector<std::string>{"early", "late"}));
  // 80 frames on the stride; val is the last 20% in time: frames 640..790.
  ASSERT_EQ(reader.size("train"), 64);
  ASSERT_EQ(reader.size("val"), 16);
  const auto frames = videoFrames(790);
  for (int k = 0; k < 80; ++k) {
    const int frame = 10 * k;
    const std::string split = k < 64 ? "train" : "val";
    const int64_t i = k < 64 ? k : k - 64;
    ASSERT_EQ(reader.labels(split)[i], frame < 400 ? 0 : 1) << frame;
    if (frame % 130 == 0 || k == 79) {  // a sample, each compared whole
      EXPECT_EQ(stored(reader, split, i), rgbBytes(frames[frame], 64, 64)) << "frame " << frame;
    }
  }

  // A label past the end of the video.
  writeText(dir.file("late.csv"), "0,a\n5000,b\n");
  r = gemelData(format("video --video {} --labels {} --out {}", shellQuote(kStreetVideo),
                       shellQuote(dir.file("late.csv")), shellQuote(dir.file("late.h5"))));
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("frame 5000 is labelled but the video ends after 795 frames"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir.file("late.h5")));

  // Not a video.
  writeText(dir.file("fake.avi"), "RIFF but not really");
  r = gemelData(format("video --video {} --labels {} --out {}", shellQuote(dir.file("fake.avi")),
                       shellQuote(dir.file("labels.csv")), shellQuote(dir.file("f.h5"))));
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("fake.avi: cannot be opened as a video"), std::string::npos) << r.output;
}

TEST(Video, DetectedFramesFromYoloFolder) {
  requireSources();
  TempDir dir;
  fs::create_directories(dir.file("ann"));
  // Annotated frames 0, 25, 50, 75 (zero-padded names); stride 25; the last one is val.
  for (const int f : {0, 25, 50, 75})
    writeText(dir.file("ann/" + std::string(4, '0') + std::to_string(f + 100).substr(1) + ".txt"),
              format("{} 0.5 0.5 0.25 0.5\n", f % 2));
  writeText(dir.file("ann/000030.txt"), "0 0.5 0.5 0.1 0.1\n");  // off the stride
  const auto out = dir.file("det.h5");
  auto r =
      gemelData(format("video --video {} --annotations {} --classes person,bag --stride 25 "
                       "--val-fraction 0.25 --out {}",
                       shellQuote(kStreetVideo), shellQuote(dir.file("ann")), shellQuote(out)));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const DatasetReader reader(out);
  reader.verify();
  EXPECT_EQ(reader.info().kind, DatasetKind::kDetection);
  EXPECT_EQ(reader.info().height, 576);
  EXPECT_EQ(reader.info().width, 768);
  ASSERT_EQ(reader.size("train"), 3);
  ASSERT_EQ(reader.size("val"), 1);
  const auto frames = videoFrames(75);
  for (int k = 0; k < 4; ++k) {
    const std::string split = k < 3 ? "train" : "val";
    const int64_t i = k < 3 ? k : 0;
    const auto boxes = reader.boxes(split, i);
    ASSERT_EQ(boxes.size(), 1u);
    EXPECT_EQ(boxes[0].cls, (25 * k) % 2);
    EXPECT_NEAR(boxes[0].x1, 0.375 * 768, 1e-3);
    EXPECT_NEAR(boxes[0].y2, 0.75 * 576, 1e-3);
    EXPECT_EQ(stored(reader, split, i), rgbBytes(frames[25 * k], 576, 768));
  }
}

// gemel-data street: the three cameras from opencv-doc, each dataset valid with both classes
// (all ten digits) in train and val, and a workload that loads as written.
TEST(Street, BuildsThreeCamerasAndAWorkloadThatLoads) {
  requireSources();
  TempDir dir;
  const auto r = gemelData(format("street --out {} --size 32", shellQuote(dir.file("s"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto w = config::loadWorkload(dir.file("s/street.yaml"));
  ASSERT_EQ(w.tasks.size(), 3u);
  for (const auto& t : w.tasks) {
    const DatasetReader reader(t.dataset);
    reader.verify();
    EXPECT_EQ(static_cast<int>(reader.info().classes.size()), t.num_classes) << t.name;
    EXPECT_EQ(reader.info().height, 32) << t.name;
    for (const auto* split : {"train", "val"}) {
      std::vector<int64_t> n(reader.info().classes.size(), 0);
      for (const auto l : reader.labels(split)) ++n[l];
      for (std::size_t c = 0; c < n.size(); ++c)
        EXPECT_GT(n[c], 0) << t.name << " " << split << " " << c;
    }
  }
  EXPECT_EQ(DatasetReader(w.tasks[2].dataset).size("val"), 1000);  // 100 digits of each class
}

}  // namespace
}  // namespace gemel::data
