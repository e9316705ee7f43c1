// gemel-data: builds, inspects and checks gemel datasets (HDF5), and measures the loader.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "gemel/cli/options.h"
#include "gemel/cli/run_main.h"
#include "gemel/core/error.h"
#include "gemel/core/format.h"
#include "gemel/core/log.h"
#include "gemel/data/dataset.h"
#include "gemel/data/loader.h"
#include "gemel/data/sources.h"
#include "gemel/data/transforms.h"

namespace gemel::data {
namespace {

using cli::Args;
namespace po = boost::program_options;

// A comma-separated list of numbers, each read whole by `parse` (std::stoi, std::stod); else
// one error naming the option and an example.
template <typename T, typename Parse>
std::vector<T> parseList(const std::string& text, const std::string& option,
                         const std::string& expected, Parse parse) {
  std::vector<T> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      std::size_t used = 0;
      out.push_back(parse(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw UsageError(option + " '" + text + "': expected " + expected);
    }
  }
  return out;
}

std::vector<int> parseClasses(const std::string& text) {
  return parseList<int>(text, "--classes", "comma-separated class numbers, e.g. 0,2,6",
                        [](const std::string& s, std::size_t* used) { return std::stoi(s, used); });
}

std::vector<double> parseFractions(const std::string& text) {
  return parseList<double>(
      text, "--fractions", "comma-separated shares, e.g. 1,0.3,0.1",
      [](const std::string& s, std::size_t* used) { return std::stod(s, used); });
}

void reportCounts(const std::string& out, const std::vector<int64_t>& counts) {
  log::info("data", "{}: {} train and {} val images", out, counts[0], counts[1]);
}

int runFashionMnist(const Args& args) {
  po::options_description desc("fashion-mnist options");
  desc.add_options()("out", po::value<std::string>()->required(), "output dataset (.h5)")(
      "dir", po::value<std::string>()->default_value(kFashionMnistDir),
      "directory of the idx files")("classes", po::value<std::string>(),
                                    "class subset, e.g. 0,2,6 (relabelled 0..k-1)")(
      "size", po::value<int>()->default_value(28), "output image side (bilinear resize)")(
      "channels", po::value<int>()->default_value(3), "1 (grey) or 3 (grey replicated)")(
      "max-train", po::value<int64_t>()->default_value(0), "cap on train images (0: all)")(
      "max-val", po::value<int64_t>()->default_value(0), "cap on val images (0: all)")(
      "fractions", po::value<std::string>(),
      "per class, the share of its images kept, e.g. 1,0.3,0.1 (skewed classes)")(
      "seed", po::value<uint64_t>()->default_value(0), "which images a cap keeps");
  po::variables_map vm;
  if (!cli::parseCommandLine("fashion-mnist", "--out FILE [options]", desc, args, vm, "gemel-data"))
    return 0;
  FashionMnistOptions o;
  o.dir = vm["dir"].as<std::string>();
  if (vm.count("classes")) o.classes = parseClasses(vm["classes"].as<std::string>());
  o.size = vm["size"].as<int>();
  o.channels = vm["channels"].as<int>();
  o.max_train = vm["max-train"].as<int64_t>();
  o.max_val = vm["max-val"].as<int64_t>();
  o.seed = vm["seed"].as<uint64_t>();
  if (vm.count("fractions")) o.fractions = parseFractions(vm["fractions"].as<std::string>());
  const auto out = vm["out"].as<std::string>();
  reportCounts(out, convertFashionMnist(o, out));
  return 0;
}

// --size/--height/--width/--channels, shared by the OpenCV converters.
void addConvertOptions(po::options_description& desc) {
  desc.add_options()("out", po::value<std::string>()->required(), "output dataset (.h5)")(
      "size", po::value<int>(), "resize every image to SIZE x SIZE")(
      "height", po::value<int>(), "resize to this height (with --width)")(
      "width", po::value<int>(), "resize to this width (with --height)")(
      "channels", po::value<int>()->default_value(3), "3 (RGB) or 1 (grey)");
}

void readConvertOptions(const po::variables_map& vm, ConvertOptions& o) {
  if (vm.count("size")) {
    GEMEL_THROW_IF_NOT(!vm.count("height") && !vm.count("width"), UsageError,
                       "give --size or --height/--width, not both");
    o.height = o.width = vm["size"].as<int>();
    GEMEL_THROW_IF_NOT(o.height > 0, UsageError, "--size {} must be positive", o.height);
  } else if (vm.count("height") || vm.count("width")) {
    GEMEL_THROW_IF_NOT(vm.count("height") && vm.count("width"), UsageError,
                       "--height and --width go together");
    o.height = vm["height"].as<int>();
    o.width = vm["width"].as<int>();
    GEMEL_THROW_IF_NOT(o.height > 0 && o.width > 0, UsageError,
                       "--height and --width must be positive");
  }
  o.channels = vm["channels"].as<int>();
}

int runImageFolder(const Args& args) {
  po::options_description desc("imagefolder options");
  desc.add_options()("src", po::value<std::string>()->required(),
                     "folder laid out as <name>_CL/{train,val}/<class>/<image>");
  addConvertOptions(desc);
  po::variables_map vm;
  if (!cli::parseCommandLine("imagefolder", "--src DIR --out FILE [options]", desc, args, vm,
                             "gemel-data"))
    return 0;
  ImageFolderOptions o;
  readConvertOptions(vm, o);
  o.root = vm["src"].as<std::string>();
  const auto out = vm["out"].as<std::string>();
  reportCounts(out, convertImageFolder(o, out));
  return 0;
}

int runYolo(const Args& args) {
  po::options_description desc("yolo options");
  desc.add_options()("src", po::value<std::string>()->required(),
                     "folder laid out as <name>_OD/{train,val}/{images,annotations}")(
      "classes", po::value<std::string>(), "class names in label order, e.g. car,person")(
      "names", po::value<std::string>(), "file of class names, one per line");
  addConvertOptions(desc);
  po::variables_map vm;
  if (!cli::parseCommandLine("yolo", "--src DIR --out FILE [options]", desc, args, vm,
                             "gemel-data"))
    return 0;
  YoloOptions o;
  readConvertOptions(vm, o);
  o.root = vm["src"].as<std::string>();
  if (vm.count("classes")) o.classes = splitList(vm["classes"].as<std::string>());
  if (vm.count("names")) o.names = vm["names"].as<std::string>();
  const auto out = vm["out"].as<std::string>();
  reportCounts(out, convertYolo(o, out));
  return 0;
}

int runImport(const Args& args) {
  po::options_description desc("import options");
  desc.add_options()("src", po::value<std::string>()->required(),
                     "the original tool's dataset_formation/datasets (or the folder holding it)")(
      "task", po::value<std::vector<std::string>>()->required(),
      "a task: its dataset's name and _<arch>, e.g. main_2nd_cars_people_resnet50 (repeat)")(
      "out", po::value<std::string>()->required(), "output directory: datasets and <name>.yaml")(
      "name", po::value<std::string>()->default_value("imported"), "the workload's name")(
      "weights", po::value<std::string>(),
      "directory of <task>.pt / .pth weights (torch.save(model) or state_dicts)")(
      "size", po::value<int>()->default_value(224), "resize every image to SIZE x SIZE")(
      "channels", po::value<int>()->default_value(3), "3 (RGB) or 1 (grey)");
  po::variables_map vm;
  if (!cli::parseCommandLine("import", "--src DIR --task NAME [--task NAME ...] --out DIR", desc,
                             args, vm, "gemel-data"))
    return 0;
  ImportOptions o;
  o.src = vm["src"].as<std::string>();
  o.out = vm["out"].as<std::string>();
  o.name = vm["name"].as<std::string>();
  o.tasks = vm["task"].as<std::vector<std::string>>();
  if (vm.count("weights")) o.weights_dir = vm["weights"].as<std::string>();
  o.image_size = vm["size"].as<int>();
  GEMEL_THROW_IF_NOT(o.image_size >= 16, UsageError, "--size {}: expected 16 or more",
                     o.image_size);
  o.convert.height = o.convert.width = o.image_size;
  o.convert.channels = vm["channels"].as<int>();
  const auto yaml = importOriginalWorkload(o);
  std::printf("workload: %s\nnext: gemel train --config %s --out <dir>, then gemel merge\n",
              yaml.c_str(), yaml.c_str());
  return 0;
}

int runVideo(const Args& args) {
  po::options_description desc("video options");
  desc.add_options()("video", po::value<std::string>()->required(), "video file (OpenCV)")(
      "stride", po::value<int>()->default_value(1), "keep every STRIDE-th frame (0, S, 2S, ...)")(
      "labels", po::value<std::string>(), "classification: CSV of 'frame,label' lines")(
      "annotations", po::value<std::string>(),
      "detection: folder of YOLO files named by frame number (000120.txt)")(
      "classes", po::value<std::string>(),
      "class names in label order (default: sorted CSV labels)")(
      "names", po::value<std::string>(), "file of class names, one per line")(
      "val-fraction", po::value<double>()->default_value(0.2),
      "the last fraction of kept frames, in time, that forms the val split");
  addConvertOptions(desc);
  po::variables_map vm;
  if (!cli::parseCommandLine("video", "--video FILE (--labels CSV | --annotations DIR) --out FILE",
                             desc, args, vm, "gemel-data"))
    return 0;
  VideoOptions o;
  readConvertOptions(vm, o);
  o.video = vm["video"].as<std::string>();
  o.stride = vm["stride"].as<int>();
  if (vm.count("labels")) o.labels = vm["labels"].as<std::string>();
  if (vm.count("annotations")) o.annotations = vm["annotations"].as<std::string>();
  if (vm.count("classes")) o.classes = splitList(vm["classes"].as<std::string>());
  if (vm.count("names")) o.names = vm["names"].as<std::string>();
  o.val_fraction = vm["val-fraction"].as<double>();
  const auto out = vm["out"].as<std::string>();
  reportCounts(out, convertVideo(o, out));
  return 0;
}

int runDemo(const Args& args) {
  po::options_description desc("demo options");
  desc.add_options()("out", po::value<std::string>()->required(), "output directory")(
      "dir", po::value<std::string>()->default_value(kFashionMnistDir), "Fashion-MNIST idx files");
  po::variables_map vm;
  if (!cli::parseCommandLine("demo", "--out DIR", desc, args, vm, "gemel-data")) return 0;
  const auto yaml = buildDemo(vm["out"].as<std::string>(), vm["dir"].as<std::string>());
  std::printf("%s\n", yaml.c_str());
  return 0;
}

int runStreet(const Args& args) {
  po::options_description desc("street options");
  desc.add_options()("out", po::value<std::string>()->required(), "output directory")(
      "dir", po::value<std::string>()->default_value(kOpenCVDataDir),
      "opencv-doc's data (vtest.avi, digits.png)")("size", po::value<int>()->default_value(64),
                                                   "image side of every task");
  po::variables_map vm;
  if (!cli::parseCommandLine("street", "--out DIR", desc, args, vm, "gemel-data")) return 0;
  const auto yaml =
      buildStreet(vm["out"].as<std::string>(), vm["dir"].as<std::string>(), vm["size"].as<int>());
  std::printf("%s\n", yaml.c_str());
  return 0;
}

int runInfo(const Args& args) {
  po::options_description desc("info options");
  desc.add_options()("file", po::value<std::string>()->required(), "dataset (.h5)");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!cli::parseCommandLine("info", "FILE", desc, args, vm, "gemel-data", &pos)) return 0;
  const DatasetReader r(vm["file"].as<std::string>());
  const auto& info = r.info();
  std::printf("%s\n  kind: %s\n  images: %lldx%lldx%lld uint8\n  classes (%zu):", r.path().c_str(),
              toString(info.kind).c_str(), (long long)info.height, (long long)info.width,
              (long long)info.channels, info.classes.size());
  for (std::size_t i = 0; i < info.classes.size(); ++i)
    std::printf("%s %zu=%s", i ? "," : "", i, info.classes[i].c_str());
  std::printf("\n");
  for (const auto& split : kSplits) {
    if (!r.hasSplit(split)) continue;
    std::printf("  %s: %lld images", split.c_str(), (long long)r.size(split));
    if (info.kind == DatasetKind::kClassification) {
      std::vector<int64_t> per(info.classes.size(), 0);
      for (const auto l : r.labels(split)) ++per[l];
      std::printf(", per class:");
      for (const auto n : per) std::printf(" %lld", (long long)n);
    } else {
      int64_t boxes = 0;
      for (int64_t i = 0; i < r.size(split); ++i)
        boxes += static_cast<int64_t>(r.boxes(split, i).size());
      std::printf(", %lld boxes", (long long)boxes);
    }
    std::printf("\n");
  }
  return 0;
}

int runVerify(const Args& args) {
  po::options_description desc("verify options");
  desc.add_options()("file", po::value<std::string>()->required(), "dataset (.h5)");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!cli::parseCommandLine("verify", "FILE", desc, args, vm, "gemel-data", &pos)) return 0;
  const DatasetReader r(vm["file"].as<std::string>());
  r.verify();
  std::printf("%s: ok\n", r.path().c_str());
  return 0;
}

int runBench(const Args& args) {
  po::options_description desc("bench options");
  desc.add_options()("file", po::value<std::string>()->required(), "dataset (.h5)")(
      "batch-size", po::value<int64_t>()->default_value(256), "images per batch")(
      "seconds", po::value<double>()->default_value(3.0), "how long to measure each figure")(
      "split", po::value<std::string>()->default_value("train"), "train or val");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!cli::parseCommandLine("bench", "FILE [options]", desc, args, vm, "gemel-data", &pos))
    return 0;
  auto reader = std::make_shared<const DatasetReader>(vm["file"].as<std::string>());
  LoaderOptions o;
  o.split = vm["split"].as<std::string>();
  o.batch_size = vm["batch-size"].as<int64_t>();
  const double seconds = vm["seconds"].as<double>();
  const auto& info = reader->info();
  config::Transforms transforms;
  transforms.crop_padding = 4;
  const auto device =
      torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  std::printf("%s: %lldx%lldx%lld, %lld %s images; batch %lld; device %s\n", reader->path().c_str(),
              (long long)info.height, (long long)info.width, (long long)info.channels,
              (long long)reader->size(o.split), o.split.c_str(), (long long)o.batch_size,
              device.str().c_str());
  // Two figures: the loader alone, and the loader feeding device-side augmentation.
  for (const bool transform : {false, true}) {
    ShardedLoader loader(reader, o);
    int64_t images = 0, epoch = 0, wrong = 0;
    const auto start = std::chrono::steady_clock::now();
    double elapsed = 0;
    while (elapsed < seconds) {
      loader.startEpoch(epoch++);
      while (auto batch = loader.next()) {
        if (batch->images.size(0) != static_cast<int64_t>(batch->indices.size())) ++wrong;
        if (transform) {
          auto draws = Draws::forStep(0, 0, images);
          auto x = prepareImages(batch->images, transforms, &draws, device);
          if (x.size(1) != info.channels) ++wrong;
        }
        images += batch->images.size(0);
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (elapsed >= seconds) break;
      }
    }
    std::printf("  %-28s %10.0f images/s  (%lld images in %.2f s, #wrong %lld)\n",
                transform ? "loader + augment on device:" : "loader:", images / elapsed,
                (long long)images, elapsed, (long long)wrong);
  }
  {
    // The augmentation alone, on one batch over and over: what the device side costs.
    ShardedLoader loader(reader, o);
    loader.startEpoch(0);
    const auto batch = loader.next();
    GEMEL_THROW_IF_NOT(batch.has_value(), InputError, "{}: the {} split has no full batch",
                       reader->path(), o.split);
    int64_t images = 0;
    const auto start = std::chrono::steady_clock::now();
    double elapsed = 0;
    while (elapsed < seconds) {
      auto draws = Draws::forStep(0, 0, images);
      auto x = prepareImages(batch->images, transforms, &draws, device);
      if (device.is_cuda()) torch::cuda::synchronize();
      images += batch->images.size(0);
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    std::printf("  %-28s %10.0f images/s  (%lld images in %.2f s, %d threads)\n",
                "augment alone:", images / elapsed, (long long)images, elapsed,
                at::get_num_threads());
  }
  return 0;
}

constexpr const char* kUsage =
    "usage: gemel-data <command> [options]\n\n"
    "commands:\n"
    "  import         an original-Gemel workload in one step: its _CL / _OD folders and a "
    "workload\n"
    "  imagefolder    convert a classification folder <name>_CL/{train,val}/<class>/<image>\n"
    "  yolo           convert a detection folder <name>_OD/{train,val}/{images,annotations}\n"
    "  video          convert frames of a video, labelled by a CSV or YOLO files\n"
    "  fashion-mnist  convert Debian's Fashion-MNIST (a class subset, resized) to a dataset\n"
    "  demo           build the example camera workload (datasets + demo.yaml)\n"
    "  street         build the street workload from opencv-doc (video + digits, street.yaml)\n"
    "  info FILE      summarise a dataset\n"
    "  verify FILE    check every invariant of a dataset\n"
    "  bench FILE     measure the loader's images/s\n"
    "  version        what gemel was built with and what it finds at run time (--json)\n\n"
    "Run 'gemel-data <command> --help' for the options of a command.\n";

int dispatch(const std::string& command, const Args& args, const dist::World& world) {
  if (command == "imagefolder") return runImageFolder(args);
  if (command == "import") return runImport(args);
  if (command == "yolo") return runYolo(args);
  if (command == "video") return runVideo(args);
  if (command == "fashion-mnist") return runFashionMnist(args);
  if (command == "demo") return runDemo(args);
  if (command == "street") return runStreet(args);
  if (command == "info") return runInfo(args);
  if (command == "verify") return runVerify(args);
  if (command == "bench") return runBench(args);
  if (command == "version") return cli::runVersion(args, world);
  throw UsageError("'" + command + "' is not a gemel-data command" +
                   didYouMean(command, {"import", "imagefolder", "yolo", "video", "fashion-mnist",
                                        "demo", "street", "info", "verify", "bench", "version"}) +
                   "; run 'gemel-data --help'");
}

}  // namespace
}  // namespace gemel::data

int main(int argc, char** argv) {
  return gemel::cli::runMain("gemel-data", gemel::data::kUsage, argc, argv, gemel::data::dispatch);
}
