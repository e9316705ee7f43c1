// gemel-data: builds, inspects and checks gemel datasets (HDF5), and measures the loader.
#include <c10/util/Exception.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "gemel/cli/options.h"
#include "gemel/core/error.h"
#include "gemel/core/log.h"
#include "gemel/data/dataset.h"
#include "gemel/data/loader.h"
#include "gemel/data/sources.h"
#include "gemel/data/transforms.h"

namespace gemel::data {
namespace {

using cli::Args;
namespace po = boost::program_options;

std::vector<int> parseClasses(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      std::size_t used = 0;
      out.push_back(std::stoi(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw UsageError("--classes '" + text +
                       "': expected comma-separated class numbers, e.g. 0,2,6");
    }
  }
  return out;
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
  const auto out = vm["out"].as<std::string>();
  const auto counts = convertFashionMnist(o, out);
  log::info("data", "{}: {} train and {} val images", out, counts[0], counts[1]);
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
          auto x = prepareImages(batch->images, transforms, true, device);
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
  return 0;
}

constexpr const char* kUsage =
    "usage: gemel-data <command> [options]\n\n"
    "commands:\n"
    "  fashion-mnist  convert Debian's Fashion-MNIST (a class subset, resized) to a dataset\n"
    "  demo           build the example camera workload (datasets + demo.yaml)\n"
    "  info FILE      summarise a dataset\n"
    "  verify FILE    check every invariant of a dataset\n"
    "  bench FILE     measure the loader's images/s\n\n"
    "Run 'gemel-data <command> --help' for the options of a command.\n";

}  // namespace
}  // namespace gemel::data

int main(int argc, char** argv) {
  using namespace gemel;
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(data::kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? static_cast<int>(ExitCode::kUsage) : 0;
  }
  const std::string command = argv[1];
  const cli::Args args(argv + 2, argv + argc);
  try {
    if (command == "fashion-mnist") return data::runFashionMnist(args);
    if (command == "demo") return data::runDemo(args);
    if (command == "info") return data::runInfo(args);
    if (command == "verify") return data::runVerify(args);
    if (command == "bench") return data::runBench(args);
    throw UsageError("'" + command + "' is not a gemel-data command; run 'gemel-data --help'");
  } catch (const Error& e) {
    std::fprintf(stderr, "gemel-data %s: error: %s\n", command.c_str(), e.what());
    return static_cast<int>(e.code());
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "gemel-data %s: internal error (LibTorch): %s\n", command.c_str(),
                 e.what_without_backtrace());
    return static_cast<int>(ExitCode::kInternal);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gemel-data %s: internal error: %s\n", command.c_str(), e.what());
    return static_cast<int>(ExitCode::kInternal);
  }
}
