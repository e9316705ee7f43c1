// An original-Gemel workload brought over as its users have it: dataset_formation/datasets with
// two image-folder (_CL) datasets and one YOLO (_OD) dataset, built from Debian's opencv-doc
// digits sheet, and a torch.save(model) of a torchvision ResNet-18 as one task's weights. One
// `gemel-data import` makes datasets and a workload; `gemel train` and `gemel merge` run it.
#include <gtest/gtest.h>

#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>

#include "cli_support.h"
#include "gemel/core/format.h"
#include "gemel/data/dataset.h"
#include "opencv_samples.h"
#include "test_support.h"

namespace gemel::data {
namespace {

namespace fs = std::filesystem;
using gemel::testing::gemel;
using gemel::testing::readText;
using gemel::testing::run;
using gemel::testing::shellQuote;
using gemel::testing::TempDir;
using gemel::testing::writeText;

using gemel::testing::digitCell;
using gemel::testing::kDigitsSheet;

// <root>/<name>_CL/{train,val}/<digit>/<k>.png
void imageFolder(const cv::Mat& sheet, const fs::path& root, const std::string& name,
                 const std::vector<int>& digits) {
  for (const auto& [split, n] : {std::pair<std::string, int>{"train", 40}, {"val", 16}}) {
    for (const int d : digits) {
      const auto dir = root / (name + "_CL") / split / std::to_string(d);
      fs::create_directories(dir);
      for (int k = 0; k < n; ++k) {
        const int index = split == "train" ? k : 300 + k;
        cv::imwrite((dir / format("{}.png", index)).string(), digitCell(sheet, d, index));
      }
    }
  }
}

// <root>/<name>_OD/{train,val}/{images,annotations}: digits 2 and 9 placed on a 96x96 canvas,
// YOLO lines with their exact boxes, classes.txt naming them.
void yoloFolder(const cv::Mat& sheet, const fs::path& root, const std::string& name) {
  std::mt19937 rng(3);
  const auto folder = root / (name + "_OD");
  for (const auto& [split, n] : {std::pair<std::string, int>{"train", 24}, {"val", 8}}) {
    fs::create_directories(folder / split / "images");
    fs::create_directories(folder / split / "annotations");
    for (int k = 0; k < n; ++k) {
      cv::Mat canvas(96, 96, CV_8UC1, cv::Scalar(30));
      std::string lines;
      for (int j = 0; j < 2; ++j) {
        const int cls = static_cast<int>(rng() % 2), side = 28 + static_cast<int>(rng() % 12);
        const int x = 48 * j + static_cast<int>(rng() % (49 - side));  // in its half
        const int y = static_cast<int>(rng() % (97 - side));
        cv::Mat patch;
        cv::resize(digitCell(sheet, cls == 0 ? 2 : 9, static_cast<int>(rng() % 400)), patch,
                   cv::Size(side, side));
        patch.copyTo(canvas(cv::Rect(x, y, side, side)));
        lines += format("{} {} {} {} {}\n", cls, (x + side / 2.0) / 96, (y + side / 2.0) / 96,
                        side / 96.0, side / 96.0);
      }
      cv::imwrite((folder / split / "images" / format("{}.png", k)).string(), canvas);
      writeText((folder / split / "annotations" / format("{}.txt", k)).string(), lines);
    }
  }
  writeText((folder / "classes.txt").string(), "two\nnine\n");
}

TEST(ImportCli, AnOriginalToolWorkloadTrainsAndMergesAfterOneCommand) {
  ASSERT_TRUE(fs::exists(kDigitsSheet)) << kDigitsSheet << " missing: install opencv-doc";
  const cv::Mat sheet = cv::imread(kDigitsSheet, cv::IMREAD_GRAYSCALE);
  TempDir dir;
  const fs::path datasets =
      fs::path(dir.path()) / "gemel_nsdi23" / "dataset_formation" / "datasets";
  imageFolder(sheet, datasets, "main_2nd_one_seven", {1, 7});
  imageFolder(sheet, datasets, "elm_1st_three_eight", {3, 8});
  yoloFolder(sheet, datasets, "plaza_two_nine");
  // The original tool's model file holds whole pickled models: one task brings its own.
  fs::create_directories(dir.file("models"));
  const auto pickled =
      run(shellQuote(GEMEL_PYTHON) + " -c " +
          shellQuote("import sys, torch, torchvision\ntorch.manual_seed(0)\n"
                     "torch.save(torchvision.models.resnet18(num_classes=2), sys.argv[1])") +
          " " + shellQuote(dir.file("models/main_2nd_one_seven_resnet18.pt")));
  ASSERT_EQ(pickled.exit_code, 0) << pickled.output;

  auto r =
      run(shellQuote(GEMEL_DATA_BINARY) + " import --src " + shellQuote(dir.file("gemel_nsdi23")) +
          " --task main_2nd_one_seven_resnet18 --task elm_1st_three_eight_resnet18"
          " --task plaza_two_nine_ssdlite --weights " +
          shellQuote(dir.file("models")) + " --size 48 --out " + shellQuote(dir.file("imported")));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto yaml_path = dir.file("imported/imported.yaml");
  const auto yaml = readText(yaml_path);
  for (const auto& line :
       {"name: main_2nd_one_seven_resnet18\n    arch: resnet18\n    kind: classification\n"
        "    num_classes: 2\n    dataset: main_2nd_one_seven_CL.h5\n    weights: ",
        "name: elm_1st_three_eight_resnet18\n    arch: resnet18\n",
        "name: plaza_two_nine_ssdlite\n    arch: ssdlite320_mobilenet_v3_large\n"
        "    kind: detection\n    num_classes: 2\n    dataset: plaza_two_nine_OD.h5\n"})
    EXPECT_NE(yaml.find(line), std::string::npos) << line << "\nin:\n" << yaml;
  EXPECT_EQ(yaml.find("three_eight_resnet18.pt"), std::string::npos) << "no weights given for it";
  for (const auto& [file, kind, images] :
       {std::tuple<std::string, DatasetKind, int64_t>{"main_2nd_one_seven_CL.h5",
                                                      DatasetKind::kClassification, 80},
        {"elm_1st_three_eight_CL.h5", DatasetKind::kClassification, 80},
        {"plaza_two_nine_OD.h5", DatasetKind::kDetection, 24}}) {
    const DatasetReader reader(dir.file("imported/" + file));
    reader.verify();
    EXPECT_EQ(reader.info().kind, kind) << file;
    EXPECT_EQ(reader.size("train"), images) << file;
    EXPECT_EQ(reader.info().height, 48) << file;
  }

  // The imported workload trains and merges as it is.
  r = gemel(format("train --config {} --out {} --epochs 1", shellQuote(yaml_path),
                   shellQuote(dir.file("trained"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = gemel(format("merge --config {} --out {} --max-trials 1 --fixed-steps 2",
                   shellQuote(dir.file("trained/imported.trained.yaml")),
                   shellQuote(dir.file("merged"))));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("weight bytes:"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir.file("merged/results.h5")));

  // A task whose name fits no dataset: one error naming it and the folders found.
  r = run(shellQuote(GEMEL_DATA_BINARY) + " import --src " + shellQuote(datasets.string()) +
          " --task main_2nd_cats_resnet18 --out " + shellQuote(dir.file("again")));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--task main_2nd_cats_resnet18: no dataset"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("main_2nd_one_seven_CL"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace gemel::data
