// The demo's detection camera, "find the bags in the street": Fashion-MNIST bags and sneakers
// placed on frames of vtest.avi (Debian's opencv-doc), so that the pixels are real and every box
// is exact. Each image is a random square window of a frame; each item is shaded by its own
// grey levels (as alpha) in a random colour.
#include <algorithm>
#include <filesystem>
#include <random>

#include "gemel/core/error.h"
#include "gemel/data/dataset.h"
#include "gemel/data/sources.h"

#ifdef GEMEL_HAVE_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#endif

namespace fs = std::filesystem;

namespace gemel::data {

#ifdef GEMEL_HAVE_OPENCV
namespace {

constexpr int kBag = 8, kSneaker = 7;  // Fashion-MNIST labels; classes 0 and 1 here

struct Plan {
  std::string split;
  int64_t frame = 0;
};

// The items of one split by class: indices of bags, then of sneakers.
std::array<std::vector<int64_t>, 2> itemsOf(const FashionMnistSplit& s) {
  std::array<std::vector<int64_t>, 2> out;
  for (int64_t i = 0; i < s.count; ++i) {
    if (s.labels[i] == kBag) out[0].push_back(i);
    if (s.labels[i] == kSneaker) out[1].push_back(i);
  }
  return out;
}

double overlap(const Box& a, const Box& b) {
  const float w = std::max(0.0f, std::min(a.x2, b.x2) - std::max(a.x1, b.x1));
  const float h = std::max(0.0f, std::min(a.y2, b.y2) - std::max(a.y1, b.y1));
  const float inter = w * h;
  return inter / ((a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter);
}

// Pastes item (28x28 grey) scaled to `side` at (x, y) into the RGB image; returns its tight box
// (pixels whose grey level is visible), or a zero box when it is blank.
Box paste(cv::Mat& image, const uint8_t* item, int side, int x, int y, const cv::Vec3f& colour) {
  cv::Mat grey(28, 28, CV_8UC1, const_cast<uint8_t*>(item)), scaled;
  cv::resize(grey, scaled, cv::Size(side, side), 0, 0, cv::INTER_LINEAR);
  int x1 = side, y1 = side, x2 = -1, y2 = -1;
  for (int r = 0; r < side; ++r) {
    for (int c = 0; c < side; ++c) {
      const float a = scaled.at<uint8_t>(r, c) / 255.0f;
      if (a <= 0.1f) continue;
      auto& px = image.at<cv::Vec3b>(y + r, x + c);
      for (int k = 0; k < 3; ++k) {
        px[k] = cv::saturate_cast<uint8_t>(px[k] * (1 - a) + colour[k] * (0.35f + 0.65f * a) * a);
      }
      x1 = std::min(x1, c), y1 = std::min(y1, r), x2 = std::max(x2, c), y2 = std::max(y2, r);
    }
  }
  if (x2 < 0) return {};
  return {0, float(x + x1), float(y + y1), float(x + x2 + 1), float(y + y2 + 1)};
}

// Up to options.max_items items (none in one image of ten), each of a random class and size,
// pasted where it overlaps no earlier one by more than 0.2 IoU; their boxes.
std::vector<Box> placeItems(cv::Mat& rgb, const FashionMnistSplit& source,
                            const std::array<std::vector<int64_t>, 2>& items,
                            const BagsCameraOptions& options, std::mt19937_64& rng,
                            std::uniform_real_distribution<double>& u) {
  const int size = options.size;
  std::vector<Box> boxes;
  const int count = u(rng) < 0.1 ? 0 : 1 + static_cast<int>(u(rng) * options.max_items);
  for (int k = 0; k < count; ++k) {
    const int cls = u(rng) < 0.5 ? 0 : 1;
    const auto& pool = items[cls];
    const int64_t item = pool[static_cast<std::size_t>(u(rng) * pool.size())];
    const int item_side =
        std::min(size, static_cast<int>(size * (options.item_min +
                                                (options.item_max - options.item_min) * u(rng))));
    for (int attempt = 0; attempt < 10; ++attempt) {
      const int x = static_cast<int>(u(rng) * (size - item_side)),
                y = static_cast<int>(u(rng) * (size - item_side));
      const Box where{0, float(x), float(y), float(x + item_side), float(y + item_side)};
      if (std::any_of(boxes.begin(), boxes.end(),
                      [&](const Box& b) { return overlap(b, where) > 0.2; }))
        continue;
      const cv::Vec3f colour(float(60 + 195 * u(rng)), float(60 + 195 * u(rng)),
                             float(60 + 195 * u(rng)));
      auto box = paste(rgb, &source.images[item * 28 * 28], item_side, x, y, colour);
      if (box.x2 > box.x1) {
        box.cls = float(cls);
        boxes.push_back(box);
      }
      break;
    }
  }
  return boxes;
}

}  // namespace

std::vector<int64_t> buildBagsCamera(const std::string& out, const std::string& fashion_dir,
                                     const std::string& video, const BagsCameraOptions& options) {
  const int size = options.size;
  const int64_t train_images = options.train_images, val_images = options.val_images;
  GEMEL_THROW_IF_NOT(options.item_min > 0 && options.item_min <= options.item_max &&
                         options.item_max <= 1 && options.max_items >= 1,
                     UsageError, "bags camera: item sizes [{}, {}] of the side and {} items",
                     options.item_min, options.item_max, options.max_items);
  GEMEL_THROW_IF_NOT(fs::exists(video), InputError, "{}: missing; install Debian's opencv-doc",
                     video);
  cv::VideoCapture cap(video);
  GEMEL_THROW_IF_NOT(cap.isOpened(), InputError, "{}: OpenCV cannot open this video", video);
  const auto frames = static_cast<int64_t>(cap.get(cv::CAP_PROP_FRAME_COUNT));
  GEMEL_THROW_IF_NOT(frames >= 10, InputError, "{}: {} frames, too few for a camera", video,
                     frames);
  const FashionMnistSplit sources[2] = {readFashionMnist(fashion_dir, "train"),
                                        readFashionMnist(fashion_dir, "t10k")};
  const std::array<std::vector<int64_t>, 2> items[2] = {itemsOf(sources[0]), itemsOf(sources[1])};
  // Which frame each image comes from: train spreads over the first 80% of the video, val over
  // the rest; one pass over the video then makes them all.
  const int64_t cut = frames * 8 / 10;
  std::vector<Plan> plans;
  for (int64_t i = 0; i < train_images; ++i) plans.push_back({"train", i * cut / train_images});
  for (int64_t i = 0; i < val_images; ++i)
    plans.push_back({"val", cut + i * (frames - cut) / val_images});
  std::stable_sort(plans.begin(), plans.end(),
                   [](const Plan& a, const Plan& b) { return a.frame < b.frame; });

  DatasetInfo info;
  info.kind = DatasetKind::kDetection;
  info.classes = {"bag", "sneaker"};
  info.height = info.width = size;
  info.channels = 3;
  DatasetWriter writer(out, info);
  std::mt19937_64 rng(2024);
  std::uniform_real_distribution<double> u(0, 1);
  cv::Mat frame, rgb;
  int64_t at = -1;
  for (const auto& p : plans) {
    while (at < p.frame) {
      GEMEL_THROW_IF_NOT(cap.read(frame), InputError, "{}: frame {} cannot be read", video, at + 1);
      ++at;
    }
    // A random square window of the frame, scaled to size.
    const int side = std::min(frame.rows, frame.cols) * (5 + static_cast<int>(u(rng) * 4)) / 8;
    const int wx = static_cast<int>(u(rng) * (frame.cols - side)),
              wy = static_cast<int>(u(rng) * (frame.rows - side));
    cv::resize(frame(cv::Rect(wx, wy, side, side)), rgb, cv::Size(size, size), 0, 0,
               cv::INTER_AREA);
    cv::cvtColor(rgb, rgb, cv::COLOR_BGR2RGB);
    const int s = p.split == "train" ? 0 : 1;
    const auto boxes = placeItems(rgb, sources[s], items[s], options, rng, u);
    GEMEL_ASSERT(rgb.isContinuous(), "resized frame is not contiguous");
    writer.addDetected(p.split, rgb.data, boxes);
  }
  std::vector<int64_t> counts = {writer.count("train"), writer.count("val")};
  writer.commit();
  return counts;
}

#else  // !GEMEL_HAVE_OPENCV

std::vector<int64_t> buildBagsCamera(const std::string&, const std::string&, const std::string&,
                                     const BagsCameraOptions&) {
  throw UsageError("the bags camera needs OpenCV, and gemel was built without it");
}

#endif

std::vector<int64_t> buildBagsCamera(const std::string& out, const std::string& fashion_dir,
                                     const std::string& video, int size, int64_t train_images,
                                     int64_t val_images) {
  BagsCameraOptions o;
  o.size = size;
  o.train_images = train_images;
  o.val_images = val_images;
  return buildBagsCamera(out, fashion_dir, video, o);
}

}  // namespace gemel::data
