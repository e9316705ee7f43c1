// Datasets: the HDF5 format through gemel-data and h5py, sharding, the loader, bad files.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <set>

#include "augment_reference.h"
#include "gemel/core/error.h"
#include "gemel/core/format.h"
#include "gemel/data/dataset.h"
#include "gemel/data/loader.h"
#include "gemel/data/shard.h"
#include "gemel/data/sources.h"
#include "gemel/data/transforms.h"
#include "test_support.h"

namespace gemel::data {
namespace {

using gemel::testing::run;
using gemel::testing::shellQuote;
using gemel::testing::TempDir;

std::string python(const std::string& code, const std::string& args = "") {
  const auto r = run(shellQuote(GEMEL_PYTHON) + " -c " + shellQuote(code) + " " + args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.output;
}

class FashionSubset : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    FashionMnistOptions o;
    o.classes = {6, 0, 2};  // Shirt, T-shirt/top, Pullover -> labels 0, 1, 2
    o.max_train = 600;
    o.max_val = 150;
    convertFashionMnist(o, dir_->file("tops.h5"));
  }
  static void TearDownTestSuite() { delete dir_; }
  static TempDir* dir_;
};
TempDir* FashionSubset::dir_ = nullptr;

TEST_F(FashionSubset, ReaderSeesTheSubsetRelabelled) {
  DatasetReader r(dir_->file("tops.h5"));
  EXPECT_EQ(r.info().classes, (std::vector<std::string>{"Shirt", "T-shirt/top", "Pullover"}));
  EXPECT_EQ(r.size("train"), 600);
  EXPECT_EQ(r.size("val"), 150);
  EXPECT_EQ(r.info().height, 28);
  EXPECT_EQ(r.info().channels, 3);
  std::set<int64_t> seen(r.labels("train").begin(), r.labels("train").end());
  EXPECT_EQ(seen, (std::set<int64_t>{0, 1, 2}));
  EXPECT_NO_THROW(r.verify());
}

TEST_F(FashionSubset, H5pyReadsShapesDtypesAndTheOriginalPixelsAndLabels) {
  // h5py and Python's gzip read the file and Debian's idx files independently of gemel.
  const auto out = python(R"(
import gzip, sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'r')
assert f.attrs['format'] == 'gemel-dataset' and f.attrs['kind'] == 'classification', dict(f.attrs)
assert [c.decode() if isinstance(c, bytes) else c for c in f.attrs['classes']] == ['Shirt', 'T-shirt/top', 'Pullover']
imgs, labels = f['train/images'], f['train/labels']
assert imgs.dtype == np.uint8 and imgs.shape == (600, 28, 28, 3), (imgs.dtype, imgs.shape)
assert imgs.chunks == (1, 28, 28, 3), imgs.chunks
assert labels.dtype == np.int64 and labels.shape == (600,)
src = '/usr/share/datasets/fashion-mnist/'
raw = np.frombuffer(gzip.open(src + 'train-images-idx3-ubyte.gz').read()[16:], np.uint8).reshape(-1, 28, 28)
raw_labels = np.frombuffer(gzip.open(src + 'train-labels-idx1-ubyte.gz').read()[8:], np.uint8)
relabel = {6: 0, 0: 1, 2: 2}
# every stored image is an original image of the subset, with its label relabelled
index = {raw[i].tobytes(): i for i in np.nonzero(np.isin(raw_labels, [6, 0, 2]))[0]}
for k in range(0, 600, 37):
    i = index[imgs[k][:, :, 0].tobytes()]
    assert relabel[int(raw_labels[i])] == labels[k], (k, i)
    assert (imgs[k][:, :, 1] == imgs[k][:, :, 0]).all()
print('h5py ok')
)",
                          shellQuote(dir_->file("tops.h5")));
  EXPECT_NE(out.find("h5py ok"), std::string::npos) << out;
}

TEST(Shards, DisjointCoveringAndStableForOneTwoThreeRanks) {
  for (const int64_t n : {0, 1, 10, 1001}) {
    for (int world = 1; world <= 3; ++world) {
      std::vector<int> hits(n, 0);
      for (int rank = 0; rank < world; ++rank) {
        const auto range = shardRange(n, rank, world);
        const auto order = epochOrder(range, true, 5, 2, rank);
        EXPECT_EQ(order, epochOrder(range, true, 5, 2, rank));  // stable
        for (const auto i : order) ++hits[i];
        EXPECT_LE(std::abs(range.size() - n / world), 1);
      }
      for (int64_t i = 0; i < n; ++i)
        EXPECT_EQ(hits[i], 1) << "n " << n << " world " << world << " index " << i;
    }
  }
  const auto r = shardRange(1000, 0, 1);
  EXPECT_NE(epochOrder(r, true, 5, 0, 0), epochOrder(r, true, 5, 1, 0));  // reshuffled per epoch
  EXPECT_NE(epochOrder(r, true, 5, 0, 0), epochOrder(r, true, 6, 0, 0));  // per seed
}

TEST_F(FashionSubset, LoaderShardsCoverTheSplitWithCorrectLabels) {
  auto reader = std::make_shared<const DatasetReader>(dir_->file("tops.h5"));
  for (int world = 1; world <= 3; ++world) {
    std::vector<int> hits(600, 0);
    for (int rank = 0; rank < world; ++rank) {
      LoaderOptions o;
      o.batch_size = 64;
      o.rank = rank;
      o.world_size = world;
      o.cache_bytes =
          rank == 0 ? 0 : o.cache_bytes;  // rank 0 reads per batch, others from the cache
      ShardedLoader loader(reader, o);
      loader.startEpoch(3);
      int64_t batches = 0;
      while (auto batch = loader.next()) {
        ++batches;
        ASSERT_EQ(batch->images.sizes(), (std::vector<int64_t>{batch->images.size(0), 28, 28, 3}));
        for (std::size_t i = 0; i < batch->indices.size(); ++i) {
          const auto index = batch->indices[i];
          ++hits[index];
          EXPECT_EQ(batch->labels[i].item<int64_t>(), reader->labels("train")[index]);
          std::vector<uint8_t> expect(28 * 28 * 3);
          reader->readImages("train", index, 1, expect.data());
          EXPECT_EQ(std::memcmp(expect.data(), batch->images[i].data_ptr<uint8_t>(), expect.size()),
                    0);
        }
      }
      EXPECT_EQ(batches, loader.batchesPerEpoch());
    }
    for (int i = 0; i < 600; ++i) ASSERT_EQ(hits[i], 1) << "world " << world << " index " << i;
  }
}

// gemel train chooses its epoch on a tenth of the train split held out from training: over an
// epoch, on one or two ranks, the training loader and the held-out loader read disjoint
// examples that together cover the split, and the held-out ones are every tenth.
TEST_F(FashionSubset, HeldOutExamplesNeverReachTraining) {
  auto reader = std::make_shared<const DatasetReader>(dir_->file("tops.h5"));
  for (int world = 1; world <= 2; ++world) {
    std::vector<int> trained(600, 0), held(600, 0);
    for (int rank = 0; rank < world; ++rank) {
      for (const bool held_out : {false, true}) {
        LoaderOptions o;
        o.batch_size = 32;
        o.rank = rank;
        o.world_size = world;
        o.holdout_every = 10;
        o.held_out = held_out;
        ShardedLoader loader(reader, o);
        for (int epoch = 0; epoch < 2; ++epoch) {
          loader.startEpoch(epoch);
          while (auto batch = loader.next()) {
            for (const auto index : batch->indices) ++(held_out ? held : trained)[index];
          }
        }
      }
    }
    int64_t held_count = 0;
    for (int i = 0; i < 600; ++i) {
      SCOPED_TRACE(format("world {} index {}", world, i));
      ASSERT_TRUE(trained[i] == 0 || held[i] == 0) << "index " << i << " is in both";
      ASSERT_EQ(trained[i] + held[i], 2) << "read " << trained[i] + held[i] << " times in 2 epochs";
      EXPECT_EQ(held[i] > 0, i % 10 == 9);
      held_count += held[i] > 0;
    }
    EXPECT_EQ(held_count, 60);
  }
}

TEST(Transforms, NormaliseAugmentAndMoveBoxes) {
  auto images = torch::full({2, 4, 6, 3}, 255, torch::kUInt8);
  config::Transforms t;
  t.mean = {0.5, 0.5, 0.5};
  t.std = {0.5, 0.5, 0.5};
  const auto x = prepareImages(images, t, nullptr, torch::kCPU);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{2, 3, 4, 6}));
  EXPECT_TRUE(torch::allclose(x, torch::ones_like(x)));
  t.crop_padding = 2;
  Augmentation a;
  auto draws = Draws::forStep(0, 0, 0);
  const auto y = prepareImages(images, t, &draws, torch::kCPU, &a);
  ASSERT_EQ(a.dx.size(), 2u);
  // pixels moved in from the zero padding are black: (0 - 0.5) / 0.5 = -1
  const auto black = (y == -1).sum().item<int64_t>();
  const int64_t expect_black = [&] {
    int64_t n = 0;
    for (int i = 0; i < 2; ++i)
      n += 3 * (4 * 6 - (4 - std::abs(a.dy[i])) * (6 - std::abs(a.dx[i])));
    return n;
  }();
  EXPECT_EQ(black, expect_black);
  Augmentation flip{{0}, {0}, {true}};
  const auto boxes = augmentBoxes({{1, 0, 0, 2, 3}}, flip, 0, 4, 6);
  ASSERT_EQ(boxes.size(), 1u);
  EXPECT_FLOAT_EQ(boxes[0].x1, 4);
  EXPECT_FLOAT_EQ(boxes[0].x2, 6);
  Augmentation away{{10}, {0}, {false}};
  EXPECT_TRUE(augmentBoxes({{1, 0, 0, 2, 3}}, away, 0, 4, 6).empty());
}

TEST(Transforms, CpuSinglePassMatchesReferenceOps) {
  const auto c = augmentCase();
  const auto expect = referenceAugment(c.images, c.transforms, c.a);
  const auto cpu = applyAugmentation(c.images, c.transforms, c.a, torch::kCPU);
  EXPECT_TRUE(torch::allclose(cpu, expect, 1e-5, 1e-5)) << (cpu - expect).abs().max().item<float>();
}

std::string openError(const std::string& path) {
  try {
    DatasetReader r(path);
    r.verify();
    return "";
  } catch (const InputError& e) {
    return e.what();
  }
}

TEST_F(FashionSubset, BadFilesNameTheFileAndTheObject) {
  TempDir dir;
  const auto good = dir_->file("tops.h5");
  std::filesystem::copy_file(good, dir.file("cut.h5"));
  std::filesystem::resize_file(dir.file("cut.h5"), std::filesystem::file_size(good) / 3);
  EXPECT_NE(openError(dir.file("cut.h5")).find("cut.h5: "), std::string::npos);
  EXPECT_NE(openError(dir.file("none.h5")).find("none.h5: no such file"), std::string::npos);
  gemel::testing::writeText(dir.file("text.h5"), "hello");
  EXPECT_NE(openError(dir.file("text.h5")).find("text.h5: not an HDF5 file"), std::string::npos);
  for (const char* name : {"nolabels", "badlabel", "plain"}) {
    std::filesystem::copy_file(good, dir.file(std::string(name) + ".h5"));
  }
  python(R"(
import sys, h5py
d = sys.argv[1]
with h5py.File(d + '/nolabels.h5', 'a', libver=('v110', 'latest')) as f: del f['val/labels']
with h5py.File(d + '/badlabel.h5', 'a', libver=('v110', 'latest')) as f: f['train/labels'][17] = 9
with h5py.File(d + '/plain.h5', 'a', libver=('v110', 'latest')) as f: del f.attrs['format']
)",
         shellQuote(dir.path()));
  EXPECT_NE(openError(dir.file("nolabels.h5"))
                .find("nolabels.h5: missing dataset; the file is incomplete or not a gemel dataset "
                      "(/val/labels)"),
            std::string::npos)
      << openError(dir.file("nolabels.h5"));
  EXPECT_NE(openError(dir.file("badlabel.h5"))
                .find("label 9 of image 17 is out of range 0..2 (/train/labels)"),
            std::string::npos)
      << openError(dir.file("badlabel.h5"));
  EXPECT_NE(openError(dir.file("plain.h5")).find("not a gemel dataset"), std::string::npos);
}

// A box outside its image (or empty, or of an unknown class) is refused when the dataset opens,
// naming the file, the split, the image and the box: the detectors train on boxes as they are.
TEST(DetectionData, ABoxOutsideItsImageIsRefusedAtOpening) {
  TempDir dir;
  DatasetInfo info;
  info.kind = DatasetKind::kDetection;
  info.classes = {"bag", "sneaker"};
  info.height = 20;
  info.width = 30;
  {
    DatasetWriter w(dir.file("boxes.h5"), info);
    const std::vector<uint8_t> image(static_cast<std::size_t>(info.imageBytes()), 7);
    for (int i = 0; i < 3; ++i) {
      w.addDetected("train", image.data(), {{1, 2, 3, 12, 15}, {0, 20, 1, 30, 20}});
      w.addDetected("val", image.data(), {{0, 4, 4, 9, 9}});
    }
    w.commit();
  }
  EXPECT_EQ(DatasetReader(dir.file("boxes.h5")).boxes("train", 2).size(), 2u);
  for (const char* name : {"wide", "empty", "class"}) {
    std::filesystem::copy_file(dir.file("boxes.h5"), dir.file(std::string(name) + ".h5"));
  }
  python(R"(
import sys, h5py
d = sys.argv[1]
with h5py.File(d + '/wide.h5', 'a', libver=('v110', 'latest')) as f: f['train/boxes'][3, 3] = 31
with h5py.File(d + '/empty.h5', 'a', libver=('v110', 'latest')) as f: f['val/boxes'][1, 4] = 4
with h5py.File(d + '/class.h5', 'a', libver=('v110', 'latest')) as f: f['train/boxes'][0, 0] = 2
)",
         shellQuote(dir.path()));
  const auto wide = openError(dir.file("wide.h5"));
  EXPECT_NE(wide.find("wide.h5: box 1 of image 1 (class 0, x1 y1 x2 y2 = 20 1 31 20) is outside "
                      "the 30x20 image"),
            std::string::npos)
      << wide;
  EXPECT_NE(wide.find("(/train/boxes)"), std::string::npos) << wide;
  EXPECT_NE(
      openError(dir.file("empty.h5")).find("box 0 of image 1 (class 0, x1 y1 x2 y2 = 4 4 9 4)"),
      std::string::npos)
      << openError(dir.file("empty.h5"));
  EXPECT_NE(openError(dir.file("class.h5")).find("of an unknown class (0..1)"), std::string::npos)
      << openError(dir.file("class.h5"));
}

TEST(Conversion, FractionsSkewTheClassesInBothSplits) {
  TempDir dir;
  FashionMnistOptions o;
  o.classes = {5, 7};  // Sandal, Sneaker: 6000 train and 1000 val images each
  o.fractions = {1.0, 0.1};
  convertFashionMnist(o, dir.file("skewed.h5"));
  DatasetReader r(dir.file("skewed.h5"));
  for (const auto& [split, n] : {std::pair<std::string, int64_t>{"train", 6000}, {"val", 1000}}) {
    std::vector<int64_t> per(2, 0);
    for (const auto l : r.labels(split)) ++per[l];
    EXPECT_EQ(per[0], n) << split;
    EXPECT_EQ(per[1], n / 10) << split;
  }
  o.fractions = {1.0};
  EXPECT_THROW(convertFashionMnist(o, dir.file("x.h5")), UsageError);
  o.fractions = {1.0, 0.0};
  EXPECT_THROW(convertFashionMnist(o, dir.file("x.h5")), UsageError);
}

TEST(Conversion, AFailedConversionLeavesNoFileAndKeepsTheOldOne) {
  TempDir dir;
  FashionMnistOptions o;
  o.dir = dir.path();  // no idx files here
  EXPECT_THROW(convertFashionMnist(o, dir.file("x.h5")), InputError);
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.h5")));
  gemel::testing::writeText(dir.file("keep.h5"), "previous");
  EXPECT_THROW(convertFashionMnist(o, dir.file("keep.h5")), InputError);
  EXPECT_EQ(gemel::testing::readText(dir.file("keep.h5")), "previous");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);  // no temp left
}

}  // namespace
}  // namespace gemel::data
