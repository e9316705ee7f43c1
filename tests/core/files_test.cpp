#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gemel/core/error.h"
#include "gemel/core/files.h"
#include "test_support.h"

namespace gemel {
namespace {

using testing::TempDir;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int entries(const std::string& dir) {
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

TEST(AtomicFileWriter, CommitReplacesTheTargetInOnePiece) {
  TempDir dir;
  const auto path = dir.file("out.bin");
  writeFileAtomic(path, "old", 3);
  {
    AtomicFileWriter w(path);
    w.write("new ", 4);
    w.write("contents", 8);
    EXPECT_EQ(slurp(path), "old");  // nothing visible before commit
    w.commit();
  }
  EXPECT_EQ(slurp(path), "new contents");
  EXPECT_EQ(entries(dir.path()), 1);  // no temporary left behind
}

TEST(AtomicFileWriter, AbandonedWriteKeepsTheOldFileAndLeavesNoTemporary) {
  TempDir dir;
  const auto path = dir.file("out.bin");
  writeFileAtomic(path, "old", 3);
  try {
    AtomicFileWriter w(path);
    w.write("partial", 7);
    throw std::runtime_error("failure mid-write");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(slurp(path), "old");
  EXPECT_EQ(entries(dir.path()), 1);
}

TEST(AtomicFileWriter, MissingDirectoryIsAnOutputErrorNamingThePath) {
  TempDir dir;
  const auto path = dir.file("no/such/dir/out.bin");
  try {
    AtomicFileWriter w(path);
    FAIL() << "expected an OutputError";
  } catch (const OutputError& e) {
    EXPECT_EQ(e.code(), ExitCode::kOutput);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
}

// Makes the directory and leaves nothing in it; under a regular file it is an OutputError
// naming the directory and the remedy.
TEST(RequireWritableDirectory, MakesItLeavesNothingAndNamesWhatFails) {
  TempDir dir;
  const auto out = dir.file("a/b/c");
  requireWritableDirectory(out, "give --out a writable directory");
  EXPECT_TRUE(std::filesystem::is_directory(out));
  EXPECT_TRUE(std::filesystem::is_empty(out));
  {
    AtomicFileWriter w(dir.file("plain"));
    w.write("x", 1);
    w.commit();
  }
  try {
    requireWritableDirectory(dir.file("plain/sub"), "give --out a writable directory");
    FAIL() << "expected an OutputError";
  } catch (const OutputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(dir.file("plain/sub") + ": cannot create the directory ("),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("give --out a writable directory"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace gemel
