// The bundled example workload: four "camera" tasks cut from Fashion-MNIST, each with its own
// class subset, image size and amount of data, as different cameras see different things; and a
// yolov3-tiny detection camera finding Fashion-MNIST bags and sneakers on vtest.avi's frames.
// On a 2-core box gemel train's ten epochs bring every classifier above 0.9 top-1 and the
// detector to about 0.6 mAP@0.5 in about 80 s. A Faster R-CNN from scratch needs far longer
// (and more images) to detect: its camera is built here too, for the second example,
// configs/examples/rcnn_street.yaml (docs/detectors.md).
#include <filesystem>
#include <fstream>

#include "gemel/config/workload.h"
#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "gemel/core/log.h"
#include "gemel/data/sources.h"

namespace gemel::data {
namespace {

struct DemoTask {
  const char* name;
  const char* arch;
  std::vector<int> classes;
  int size;
  int64_t train, val;
};

const std::vector<DemoTask>& demoTasks() {
  static const std::vector<DemoTask> tasks = {
      {"tops_main_resnet18", "resnet18", {0, 2, 3}, 32, 2000, 500},  // T-shirt, Pullover, Dress
      {"shoes_elm_resnet18", "resnet18", {5, 7, 9}, 32, 1600, 500},  // Sandal, Sneaker, Ankle boot
      {"bottoms_park_resnet34", "resnet34", {1, 3, 4}, 32, 1200, 500},    // Trouser, Dress, Coat
      {"carry_plaza_resnet18", "resnet18", {8, 0, 1, 7}, 32, 1400, 400},  // Bag, T-shirt, Trouser,
                                                                          // Sneaker
  };
  return tasks;
}

// The detection cameras: bags and sneakers on the street. Each one's objects are sized for
// its detector's anchors and strides, and its images, epochs and sampling settings are chosen so
// that the unmerged detector really detects (mAP@0.5 above 0.5) within the quickstart's time.
struct DemoDetector {
  const char* name;
  const char* arch;
  BagsCameraOptions camera;
  int batch;
  const char* extra;  // further task keys, YAML
};

constexpr const char* kRcnnStreetTask = "bags_plaza_rcnn";

const std::vector<DemoDetector>& demoDetectors() {
  static const std::vector<DemoDetector> detectors = {
      {"bags_street_yolov3tiny",
       "yolov3-tiny",
       {128, 900, 300, 0.3, 0.5, 2},
       16,
       "    transforms: {mean: [0, 0, 0], std: [1, 1, 1], hflip: true, scale_jitter: 0.2}\n"},
  };
  return detectors;
}

}  // namespace

std::string buildDemo(const std::string& out_dir, const std::string& fashion_dir) {
  std::filesystem::create_directories(out_dir);
  std::string yaml =
      "# The gemel demo workload (gemel-data demo): four classification cameras cut from\n"
      "# Fashion-MNIST, and a detection camera: bags and sneakers on vtest.avi's street.\n"
      "name: demo_cameras\n"
      "datasets_dir: .\n"
      "defaults:\n"
      "  accuracy_target: 0.95\n"
      "  batch_size: 64\n"
      "search:\n"
      "  strategy: greedy\n"
      "  epochs_per_trial: 2\n"
      "  seconds_per_trial: 150\n"
      "  max_trials: 6           # the largest groups hold most of the savings\n"
      "  time_budget: 90         # seconds: no trial starts after it, trials share what is left\n"
      "  lr: 0.005               # the merge's step: fine-tuning trained models\n"
      "tasks:\n";
  for (const auto& t : demoTasks()) {
    FashionMnistOptions o;
    o.dir = fashion_dir;
    o.classes = t.classes;
    o.size = t.size;
    o.max_train = t.train;
    o.max_val = t.val;
    const auto file = config::defaultDatasetName(t.name, t.arch, config::TaskKind::kClassification);
    const auto counts = convertFashionMnist(o, out_dir + "/" + file);
    log::info("data", "demo: {} ({} classes, {}x{}): {} train, {} val images", file,
              t.classes.size(), t.size, t.size, counts[0], counts[1]);
    yaml += format(
        "  - name: {}\n    arch: {}\n    num_classes: {}\n    image_size: {}\n"
        "    transforms: {mean: [0.286, 0.286, 0.286], std: [0.353, 0.353, 0.353], "
        "hflip: true, crop_padding: 4}\n",
        t.name, t.arch, t.classes.size(), t.size);
  }
  // The detection cameras (need OpenCV and opencv-doc's video).
  const auto video = std::string(kOpenCVDataDir) + "/vtest.avi";
  if (haveOpenCV() && std::filesystem::exists(video)) {
    for (const auto& d : demoDetectors()) {
      const auto file = config::defaultDatasetName(d.name, d.arch, config::TaskKind::kDetection);
      const auto counts = buildBagsCamera(out_dir + "/" + file, fashion_dir, video, d.camera);
      log::info("data", "demo: {} (bags and sneakers on {}, {}x{}): {} train, {} val images", file,
                video, d.camera.size, d.camera.size, counts[0], counts[1]);
      yaml += format(
          "  - name: {}\n    arch: '{}'\n    kind: detection\n    num_classes: 2\n"
          "    image_size: {}\n    batch_size: {}\n{}",
          d.name, d.arch, d.camera.size, d.batch, d.extra);
    }
  } else {
    log::warn("data", "demo: no detection camera: {}",
              haveOpenCV() ? video + " is missing (install opencv-doc)"
                           : "gemel was built without OpenCV");
  }
  // The second example's Faster R-CNN camera (configs/examples/rcnn_street.yaml, beside the
  // demo's ResNet-18 cameras): one item of 40 to 70% of the 96 px side per image, where the
  // plain backbone's stride-32 anchors see it, and 1200 images, since a Faster R-CNN from
  // scratch needs many more steps than the demo has time for (docs/detectors.md).
  if (haveOpenCV() && std::filesystem::exists(video)) {
    const BagsCameraOptions rcnn{96, 1200, 150, 0.4, 0.7, 1};
    const auto file = config::defaultDatasetName(kRcnnStreetTask, "fasterrcnn:resnet18",
                                                 config::TaskKind::kDetection);
    const auto counts = buildBagsCamera(out_dir + "/" + file, fashion_dir, video, rcnn);
    log::info("data",
              "demo: {} (configs/examples/rcnn_street.yaml's detector, {}x{}): {} train, "
              "{} val images",
              file, rcnn.size, rcnn.size, counts[0], counts[1]);
  }
  const auto yaml_path = out_dir + "/demo.yaml";
  writeFileAtomic(yaml_path, yaml.data(), yaml.size());
  return yaml_path;
}

}  // namespace gemel::data
