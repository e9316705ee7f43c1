// The CPU budget: cgroup quotas (v1 and v2 layouts, written as the kernel shows them) and the
// choice between --threads, OMP_NUM_THREADS and the budget shared by the ranks of a node.
#include <gtest/gtest.h>

#include <filesystem>

#include "gemel/core/error.h"
#include "gemel/core/threads.h"
#include "test_support.h"

namespace gemel {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::writeText;

void put(const TempDir& dir, const std::string& rel, const std::string& text) {
  fs::create_directories(fs::path(dir.file(rel)).parent_path());
  writeText(dir.file(rel), text);
}

TEST(CpuBudget, CgroupV2QuotaIsTheSmallestAlongThePath) {
  TempDir dir;
  put(dir, "cpu.max", "max 100000\n");
  put(dir, "user.slice/cpu.max", "300000 100000\n");
  put(dir, "user.slice/job/cpu.max", "150000 100000\n");
  auto q = cgroupCpuQuota(dir.path(), "0::/user.slice/job\n");
  ASSERT_TRUE(q.has_value());
  EXPECT_DOUBLE_EQ(*q, 1.5);
  // The parent alone limits a sibling; no limit anywhere: none.
  q = cgroupCpuQuota(dir.path(), "0::/user.slice/other\n");
  ASSERT_TRUE(q.has_value());
  EXPECT_DOUBLE_EQ(*q, 3.0);
  EXPECT_FALSE(cgroupCpuQuota(dir.path(), "0::/\n").has_value());
}

TEST(CpuBudget, CgroupV1QuotaFromTheCpuController) {
  TempDir dir;
  put(dir, "cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  put(dir, "cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  put(dir, "cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "200000\n");
  put(dir, "cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  const std::string proc = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n";
  const auto q = cgroupCpuQuota(dir.path(), proc);
  ASSERT_TRUE(q.has_value());
  EXPECT_DOUBLE_EQ(*q, 2.0);
  // A path that does not exist inside a container: the mount's root decides (-1: none).
  EXPECT_FALSE(cgroupCpuQuota(dir.path(), "3:cpu,cpuacct:/elsewhere\n").has_value());
}

TEST(CpuBudget, ThisProcessHasAtLeastOneUsableCpu) {
  const auto b = cpuBudget();
  EXPECT_GE(b.affinity, 1);
  EXPECT_GE(b.usable, 1);
  EXPECT_LE(b.usable, b.affinity);
}

TEST(ChooseThreads, RequestThenEnvironmentThenBudgetSharedByRanks) {
  CpuBudget b;
  b.affinity = 16;
  b.quota = 6.5;
  b.usable = 6;
  EXPECT_EQ(chooseThreads(3, "8", b, 2).threads, 3);
  EXPECT_EQ(chooseThreads(0, "8", b, 2).threads, 8);
  EXPECT_EQ(chooseThreads(0, "8", b, 2).why, "OMP_NUM_THREADS");
  const auto c = chooseThreads(0, nullptr, b, 2);
  EXPECT_EQ(c.threads, 3);
  EXPECT_NE(c.why.find("cgroup quota 6.50"), std::string::npos) << c.why;
  EXPECT_NE(c.why.find("2 ranks"), std::string::npos) << c.why;
  EXPECT_EQ(chooseThreads(0, "", b, 1).threads, 6);
  EXPECT_EQ(chooseThreads(0, nullptr, b, 12).threads, 1);  // never zero
  EXPECT_THROW(chooseThreads(0, "two", b, 1), UsageError);
  EXPECT_THROW(chooseThreads(0, "0", b, 1), UsageError);
  EXPECT_THROW(chooseThreads(-1, nullptr, b, 1), UsageError);
}

}  // namespace
}  // namespace gemel
