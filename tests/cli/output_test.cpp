// Outputs on a full or read-only file system, as users meet them: a merge that runs out of
// room keeps the results.h5 it had (the last confirmed trial) and says the disk is full; one
// whose --out is read-only fails before it trains. Each in a small tmpfs mounted in a mount
// namespace of its own (unshare), so nothing outside the test sees it.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_support.h"
#include "fashion_workload.h"
#include "gemel/core/format.h"
#include "test_support.h"

namespace gemel {
namespace {

namespace fs = std::filesystem;
using testing::readText;
using testing::shellQuote;
using testing::TempDir;

// Runs `body` (sh) in a new mount namespace with a tmpfs of `kib` KiB at $M; exit 77 when
// this machine cannot mount one there.
testing::CommandResult inTmpfs(const TempDir& dir, int64_t kib, const std::string& body) {
  fs::create_directories(dir.file("mnt"));
  const std::string script = "set -u\nmount -t tmpfs -o size=" + std::to_string(kib) +
                             "k tmpfs \"$M\" || exit 77\n" + body;
  testing::writeText(dir.file("body.sh"), script);
  return testing::run("M=" + shellQuote(dir.file("mnt")) + " G=" + shellQuote(GEMEL_BINARY) +
                      " D=" + shellQuote(dir.path()) + " unshare -rm sh " +
                      shellQuote(dir.file("body.sh")));
}

class OutputFailures : public ::testing::Test {
 protected:
  void SetUp() override {
    trained_ = testing::sharedTrainedTrio(GEMEL_BINARY);
    // One confirmed trial: the results.h5 a longer merge would resume from.
    const auto r =
        testing::gemel(format("merge --config {} --out {} --max-trials 1 --fixed-steps 1",
                              shellQuote(trained_), shellQuote(dir_.file("good"))));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    good_ = dir_.file("good/results.h5");
    kib_ = static_cast<int64_t>(fs::file_size(good_) / 1024);
  }
  // "$G merge ..." of the trio into OUT, with its output in D/NAME.log and exit code in
  // D/NAME.rc.
  std::string merge(const std::string& name, const std::string& out, const std::string& extra) {
    return format(
        "$G merge --config {} --out {} --fixed-steps 1 {} >\"$D/{}.log\" 2>&1; "
        "echo $? >\"$D/{}.rc\"\n",
        shellQuote(trained_), out, extra, name, name);
  }
  int rc(const std::string& name) { return std::stoi(readText(dir_.file(name + ".rc"))); }
  std::string log(const std::string& name) { return readText(dir_.file(name + ".log")); }
  TempDir dir_;
  std::string trained_, good_;
  int64_t kib_ = 0;
};

// Room for the results of one trial but not for a second beside it (its temporary file): the
// second trial's checkpoint fails, the first's results.h5 stays byte for byte, no temporary
// file is left, and the error says the disk is full (exit 7). With no room for even one, the
// merge leaves no results.h5 at all.
TEST_F(OutputFailures, AFullDiskKeepsTheLastResultsAndSaysSo) {
  auto r = inTmpfs(dir_, kib_ * 3 / 2,
                   "mkdir \"$M/out\" && cp " + shellQuote(good_) + " \"$M/out/results.h5\"\n" +
                       merge("full", "\"$M/out\"", "--resume --max-trials 2") + "cmp -s " +
                       shellQuote(good_) + " \"$M/out/results.h5\"; echo $? >\"$D/same\"\n" +
                       "ls -A \"$M/out\" >\"$D/full.ls\"\n"
                       "rm -r \"$M/out\"\n" +
                       "mount -o remount,size=" + std::to_string(kib_ / 2) + "k \"$M\"\n" +
                       merge("small", "\"$M/fresh\"", "--max-trials 1") +
                       "ls -A \"$M/fresh\" >\"$D/small.ls\"\n");
  if (r.exit_code == 77) GTEST_SKIP() << "cannot mount a tmpfs in a mount namespace here";
  ASSERT_EQ(r.exit_code, 0) << r.output;

  EXPECT_EQ(rc("full"), 7) << log("full");
  EXPECT_NE(log("full").find("results.h5"), std::string::npos) << log("full");
  EXPECT_NE(log("full").find("is full ("), std::string::npos) << log("full");
  EXPECT_NE(log("full").find("a file it would replace is left as it was"), std::string::npos)
      << log("full");
  EXPECT_EQ(readText(dir_.file("same")), "0\n") << "results.h5 was changed";
  EXPECT_EQ(readText(dir_.file("full.ls")), "results.h5\n") << "a temporary file was left";

  EXPECT_EQ(rc("small"), 7) << log("small");
  EXPECT_NE(log("small").find("is full ("), std::string::npos) << log("small");
  EXPECT_EQ(readText(dir_.file("small.ls")), "") << "a partial results.h5 or temporary was left";
}

// A read-only --out: merge (fresh or resumed) and export fail at once, before any training,
// naming the directory and the read-only file system (exit 7); results.h5 is untouched.
TEST_F(OutputFailures, AReadOnlyOutputFailsBeforeTraining) {
  auto r = inTmpfs(dir_, kib_ * 2,
                   "mkdir \"$M/out\" && cp " + shellQuote(good_) + " \"$M/out/results.h5\"\n" +
                       "mount -o remount,ro \"$M\"\n" +
                       merge("resumed", "\"$M/out\"", "--resume --max-trials 2") +
                       merge("fresh", "\"$M/out/new\"", "--max-trials 1") +
                       "$G export --results \"$M/out/results.h5\" --all --out \"$M/out/pt\" "
                       ">\"$D/export.log\" 2>&1; echo $? >\"$D/export.rc\"\n"
                       "cmp -s " +
                       shellQuote(good_) + " \"$M/out/results.h5\"; echo $? >\"$D/same\"\n");
  if (r.exit_code == 77) GTEST_SKIP() << "cannot mount a tmpfs in a mount namespace here";
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const std::string name : {"resumed", "fresh", "export"}) {
    EXPECT_EQ(rc(name), 7) << name << "\n" << log(name);
    EXPECT_NE(log(name).find("is read-only"), std::string::npos) << name << "\n" << log(name);
    EXPECT_EQ(log(name).find("training on"), std::string::npos) << name << " trained first\n"
                                                                << log(name);
  }
  EXPECT_NE(log("fresh").find("/mnt/out/new: cannot create the directory"), std::string::npos)
      << log("fresh");
  EXPECT_EQ(readText(dir_.file("same")), "0\n") << "results.h5 was changed";
}

}  // namespace
}  // namespace gemel
