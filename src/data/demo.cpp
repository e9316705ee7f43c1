// The bundled example workload: four "camera" tasks cut from Fashion-MNIST, each with its own
// class subset, image size and amount of data, as different cameras see different things; and
// two detection cameras (yolov3-tiny; a Faster R-CNN over ResNet-18) finding Fashion-MNIST bags
// and sneakers on vtest.avi's frames.
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
      {"tops_main_resnet18", "resnet18", {0, 2, 6}, 32, 2000, 500},  // T-shirt, Pullover, Shirt
      {"shoes_elm_resnet18", "resnet18", {5, 7, 9}, 32, 1600, 500},  // Sandal, Sneaker, Ankle boot
      {"bottoms_park_resnet34", "resnet34", {1, 3, 4}, 32, 1200, 500},    // Trouser, Dress, Coat
      {"carry_plaza_resnet18", "resnet18", {8, 0, 1, 7}, 32, 1400, 400},  // Bag, T-shirt, Trouser,
                                                                          // Sneaker
  };
  return tasks;
}

constexpr int kBagsSize = 128;
constexpr int64_t kBagsTrain = 900, kBagsVal = 300;
// The Faster R-CNN camera: small, as its training step costs the 2-core box about 0.07 s per
// 64 px image (about 40 s for these 200 images over the demo's three epochs, more than any
// other camera); its ResNet-18 backbone shares with the ResNet-18 classifiers. The sizes here,
// the quickstart's three epochs and the search's time budget keep the quickstart's main job
// under 5 minutes on 2 CPU cores (265 s measured).
constexpr int kRcnnSize = 64;
constexpr int64_t kRcnnTrain = 200, kRcnnVal = 80;

}  // namespace

std::string buildDemo(const std::string& out_dir, const std::string& fashion_dir) {
  std::filesystem::create_directories(out_dir);
  std::string yaml =
      "# The gemel demo workload (gemel-data demo): four classification cameras cut from\n"
      "# Fashion-MNIST, and two detection cameras: bags and sneakers on vtest.avi's street.\n"
      "name: demo_cameras\n"
      "datasets_dir: .\n"
      "defaults:\n"
      "  accuracy_target: 0.95\n"
      "  batch_size: 64\n"
      "search:\n"
      "  strategy: greedy\n"
      "  epochs_per_trial: 2\n"
      "  seconds_per_trial: 150\n"
      "  max_trials: 3           # the largest groups hold most of the savings\n"
      "  time_budget: 100        # seconds: no trial starts after it, trials share what is left\n"
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
  // The detection camera: bags and sneakers on the street (needs OpenCV and opencv-doc's video).
  const auto video = std::string(kOpenCVDataDir) + "/vtest.avi";
  if (haveOpenCV() && std::filesystem::exists(video)) {
    const char* name = "bags_street_yolov3tiny";
    const auto file = config::defaultDatasetName(name, "yolov3-tiny", config::TaskKind::kDetection);
    const auto counts =
        buildBagsCamera(out_dir + "/" + file, fashion_dir, video, kBagsSize, kBagsTrain, kBagsVal);
    log::info("data", "demo: {} (bags and sneakers on {}, {}x{}): {} train, {} val images", file,
              video, kBagsSize, kBagsSize, counts[0], counts[1]);
    yaml += format(
        "  - name: {}\n    arch: yolov3-tiny\n    kind: detection\n    num_classes: 2\n"
        "    image_size: {}\n    batch_size: 16\n"
        "    transforms: {mean: [0, 0, 0], std: [1, 1, 1], hflip: true, scale_jitter: 0.2}\n",
        name, kBagsSize);
    const char* rcnn = "bags_plaza_rcnn";
    const auto rcnn_file =
        config::defaultDatasetName(rcnn, "fasterrcnn:resnet18", config::TaskKind::kDetection);
    const auto rcnn_counts = buildBagsCamera(out_dir + "/" + rcnn_file, fashion_dir, video,
                                             kRcnnSize, kRcnnTrain, kRcnnVal);
    log::info("data", "demo: {} (bags and sneakers on {}, {}x{}): {} train, {} val images",
              rcnn_file, video, kRcnnSize, kRcnnSize, rcnn_counts[0], rcnn_counts[1]);
    yaml += format(
        "  - name: {}\n    arch: 'fasterrcnn:resnet18'\n    kind: detection\n"
        "    num_classes: 2\n    image_size: {}\n    batch_size: 8\n"
        "    transforms: {hflip: true}\n",
        rcnn, kRcnnSize);
  } else {
    log::warn("data", "demo: no detection camera: {}",
              haveOpenCV() ? video + " is missing (install opencv-doc)"
                           : "gemel was built without OpenCV");
  }
  const auto yaml_path = out_dir + "/demo.yaml";
  writeFileAtomic(yaml_path, yaml.data(), yaml.size());
  return yaml_path;
}

}  // namespace gemel::data
