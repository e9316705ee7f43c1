// A merge killed mid-trial (SIGKILL, as a lost node or an OOM kill ends it) and resumed with
// --resume ends exactly where an uninterrupted run ends: the same trials and decisions, the
// same weights (tests/support/same_results.py). On one process, and with one rank of an
// `mpirun -np 2` job killed. The kill comes from GEMEL_FAULT=RANK:STEP:kill at the 5th training
// step of the run: trial 1 (3 steps, recorded) is done, trial 2 is in flight.
#include <gtest/gtest.h>

#include <filesystem>

#include "fashion_workload.h"
#include "gemel/core/format.h"
#include "gemel/io/results.h"
#include "test_support.h"

namespace gemel {
namespace {

using testing::run;
using testing::shellQuote;
using testing::TempDir;

class KillResume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    trained_ = new std::string(testing::sharedTrainedTrio(GEMEL_BINARY));
  }
  static void TearDownTestSuite() { delete trained_; }
  static std::string* trained_;

  // Runs the same merge three ways on `np` ranks: uninterrupted, killed, resumed. `parallel`
  // (gemel merge options): with --parallel-trials, where the kill comes in the second wave
  // (each rank trained 3 steps in the first, and at most 1 more in a combination's recovery),
  // and the uninterrupted run is run twice, to show that it gives the same results each time.
  void killAndResume(int np, const std::string& parallel = "") {
    TempDir dir;
    const std::string launcher =
        np == 1 ? std::string() : testing::mpirunPrefix(np) + "-x OMP_NUM_THREADS=1 ";
    const std::string merge =
        launcher + shellQuote(GEMEL_BINARY) + " merge --config " + shellQuote(*trained_) +
        " --fixed-steps 3 --threads 1" +
        (parallel.empty() ? " --max-trials 3" : " --max-trials 4 " + parallel);
    auto r = run("OMP_NUM_THREADS=1 " + merge + " --out " + shellQuote(dir.file("full")));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto full = io::readResults(dir.file("full/results.h5"));
    ASSERT_GE(full.trials.size(), 2u) << "the kill must come before the last trial";
    ASSERT_EQ(full.trials[0].steps, 3);

    const int victim = np - 1;  // with 2 ranks, not the lead that writes results.h5
    r = run("OMP_NUM_THREADS=1 GEMEL_FAULT=" + format("{}:5:kill ", victim) + merge + " --out " +
            shellQuote(dir.file("part")));
    ASSERT_NE(r.exit_code, 0) << "the fault did not kill the run\n" << r.output;
    const auto part = io::readResults(dir.file("part/results.h5"));
    if (!parallel.empty()) {
      ASSERT_GE(part.trials.size(), 1u)
          << "killed in the second wave, after the first was recorded";
      ASSERT_LT(part.trials.size(), full.trials.size());
    } else {
      ASSERT_EQ(part.trials.size(), 1u) << "killed in trial 2, after trial 1 was recorded";
    }
    EXPECT_EQ(part.trials[0].label, full.trials[0].label);
    EXPECT_EQ(part.trials[0].decision, full.trials[0].decision);
    if (!parallel.empty()) {
      r = run("OMP_NUM_THREADS=1 " + merge + " --out " + shellQuote(dir.file("again")));
      ASSERT_EQ(r.exit_code, 0) << r.output;
      r = sameResults(dir.file("full/results.h5"), dir.file("again/results.h5"),
                      full.trials.size());
      EXPECT_EQ(r.exit_code, 0) << "two runs of the same parallel job differ\n" << r.output;
    }

    r = run("OMP_NUM_THREADS=1 " + merge + " --resume --out " + shellQuote(dir.file("part")));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    r = sameResults(dir.file("full/results.h5"), dir.file("part/results.h5"), full.trials.size());
    EXPECT_EQ(r.exit_code, 0) << r.output;
  }

  // tests/support/same_results.py: the same search, B finished, both holding `trials` trials.
  static testing::CommandResult sameResults(const std::string& a, const std::string& b,
                                            std::size_t trials) {
    return run(shellQuote(GEMEL_PYTHON) + " " +
               shellQuote(std::string(GEMEL_SOURCE_DIR) + "/tests/support/same_results.py") + " " +
               shellQuote(a) + " " + shellQuote(b) + format(" {}", trials));
  }
};
std::string* KillResume::trained_ = nullptr;

TEST_F(KillResume, OneProcessKilledMidTrialResumesToTheUninterruptedEnd) { killAndResume(1); }

TEST_F(KillResume, OneOfTwoRanksKilledMidTrialResumesToTheUninterruptedEnd) { killAndResume(2); }

// One trial per rank: rank 1 runs the trial after rank 0's, which is combined with it.
TEST_F(KillResume, ParallelTrialsKilledMidWaveResumeToTheUninterruptedEnd) {
  killAndResume(2, "--parallel-trials --trial-ranks 1");
}

// Three ranks: the next trial on a group of two (its three tasks placed over them), the third
// rank runs the trial after it.
TEST_F(KillResume, ParallelTrialsOnRankGroupsKilledMidWaveResumeToTheUninterruptedEnd) {
  killAndResume(3, "--parallel-trials --trial-ranks 2");
}

}  // namespace
}  // namespace gemel
