// The h5 wrapper under threads: readers of one dataset in several threads while another thread
// writes and commits datasets, as the loader's prefetch threads and the results store meet in
// a merge. Every HDF5 call runs under the wrapper's lock, so this holds on a serial HDF5 build
// too; without the lock such a build corrupts its state or crashes here.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gemel/data/dataset.h"
#include "test_support.h"

namespace gemel::data {
namespace {

DatasetInfo smallInfo() {
  DatasetInfo info;
  info.classes = {"a", "b", "c"};
  info.height = 8;
  info.width = 8;
  info.channels = 3;
  return info;
}

// Image i of a split is filled with the byte (i * 7 + salt) % 251: easy to check after a read.
void writeDataset(const std::string& path, int images, int salt) {
  DatasetWriter w(path, smallInfo());
  std::vector<uint8_t> image(static_cast<std::size_t>(smallInfo().imageBytes()));
  for (const char* split : {"train", "val"}) {
    for (int i = 0; i < images; ++i) {
      std::fill(image.begin(), image.end(), static_cast<uint8_t>((i * 7 + salt) % 251));
      w.addClassified(split, image.data(), i % 3);
    }
  }
  w.commit();
}

TEST(Hdf5Threads, ConcurrentReadersAndAWriterSeeConsistentFiles) {
  gemel::testing::TempDir dir;
  constexpr int kImages = 300;
  writeDataset(dir.file("shared.h5"), kImages, 0);
  const DatasetReader reader(dir.file("shared.h5"));
  const int64_t bytes = reader.info().imageBytes();

  std::atomic<int64_t> wrong{0}, reads{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint8_t> batch(static_cast<std::size_t>(16 * bytes));
      for (int round = 0; !stop || round < 20; ++round) {  // as long as the writer writes
        const int64_t start = (round * 13 + t * 29) % (kImages - 16);
        reader.readImages(t % 2 ? "val" : "train", start, 16, batch.data());
        for (int64_t i = 0; i < 16; ++i) {
          const auto expect = static_cast<uint8_t>(((start + i) * 7) % 251);
          if (batch[static_cast<std::size_t>(i * bytes)] != expect ||
              batch[static_cast<std::size_t>((i + 1) * bytes - 1)] != expect)
            ++wrong;
        }
        ++reads;
      }
    });
  }
  // The writer: whole datasets written, committed and read back while the readers run.
  int written = 0;
  for (; written < 12; ++written) {
    const auto path = dir.file("w" + std::to_string(written) + ".h5");
    writeDataset(path, 64, written);
    const DatasetReader back(path);
    EXPECT_EQ(back.size("train"), 64);
    std::vector<uint8_t> image(static_cast<std::size_t>(bytes));
    back.readImages("val", 5, 1, image.data());
    EXPECT_EQ(image[0], static_cast<uint8_t>((5 * 7 + written) % 251));
  }
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0) << "of " << reads.load() << " batch reads";
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(written, 12);
}

}  // namespace
}  // namespace gemel::data
