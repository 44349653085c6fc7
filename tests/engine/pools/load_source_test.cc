// CPU load sources (engine/load_source.h): /proc/stat and cgroup v2 cpu.stat/cpu.max parsing on
// sample text, and real reads of this host.
#include "engine/pools/load_source.h"

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::engine::pools {
namespace {

constexpr const char* kProcStat =
    "cpu  100 20 30 800 50 5 5 0 40 0\n"
    "cpu0 50 10 15 400 25 2 3 0 20 0\n"
    "intr 12345 0 0\n"
    "ctxt 999\n";

TEST(LoadSourceTest, ProcStatTotalIsTheFirstEightFieldsAndIdleIncludesIowait) {
  Result<CpuTimes> times = ParseProcStat(kProcStat);
  FE_ASSERT_OK(times);
  EXPECT_EQ(times->total, 100u + 20 + 30 + 800 + 50 + 5 + 5 + 0);  // guest time is already in user
  EXPECT_EQ(times->idle, 850u);
}

TEST(LoadSourceTest, ProcStatWithoutAnAggregateLineIsRefused) {
  Result<CpuTimes> times = ParseProcStat("cpu0 1 2 3 4\nintr 5\n");
  ASSERT_FALSE(times.ok());
  EXPECT_EQ(times.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(times.status().message().find("'cpu'"), std::string::npos) << times.status().message();
  EXPECT_FALSE(ParseProcStat("cpu  1 2 x 4\n").ok());
  EXPECT_FALSE(ParseProcStat("cpu  1 2\n").ok());
}

TEST(LoadSourceTest, BusyFractionIsTheNonIdleShareOfTheTicksBetweenSamples) {
  CpuTimes before{1000, 800};
  CpuTimes after{1400, 900};  // 400 ticks, 100 idle: 75% busy
  std::optional<double> busy = BusyBetween(before, after);
  ASSERT_TRUE(busy.has_value());
  EXPECT_DOUBLE_EQ(*busy, 0.75);
  EXPECT_FALSE(BusyBetween(after, after).has_value());   // no time passed
  EXPECT_FALSE(BusyBetween(after, before).has_value());  // counters went backwards
}

TEST(LoadSourceTest, CgroupCpuStatGivesUsageUsec) {
  Result<uint64_t> usage = ParseCgroupUsageUsec("usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n");
  FE_ASSERT_OK(usage);
  EXPECT_EQ(*usage, 123456u);
  EXPECT_FALSE(ParseCgroupUsageUsec("user_usec 1\n").ok());
  EXPECT_FALSE(ParseCgroupUsageUsec("usage_usec lots\n").ok());
}

TEST(LoadSourceTest, CgroupCpuMaxGivesTheQuotaInCpusOrNoLimit) {
  Result<std::optional<double>> unlimited = ParseCgroupCpuMax("max 100000\n");
  FE_ASSERT_OK(unlimited);
  EXPECT_FALSE(unlimited->has_value());
  Result<std::optional<double>> half = ParseCgroupCpuMax("50000 100000\n");
  FE_ASSERT_OK(half);
  ASSERT_TRUE(half->has_value());
  EXPECT_DOUBLE_EQ(**half, 0.5);
  EXPECT_FALSE(ParseCgroupCpuMax("50000 0\n").ok());
  EXPECT_FALSE(ParseCgroupCpuMax("lots 100000\n").ok());
}

double BurnAndMeasure(LoadSource& source) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(60);
  volatile uint64_t sink = 0;
  while (std::chrono::steady_clock::now() < until) sink = sink + 1;
  Result<double> busy = source.BusyFraction();
  EXPECT_TRUE(busy.ok()) << busy.status().ToString();
  return busy.ok() ? *busy : -1;
}

TEST(LoadSourceTest, HostProcStatReadGivesAFractionBetweenZeroAndOne) {
  std::unique_ptr<LoadSource> source = MakeHostLoadSource();
  for (int i = 0; i < 2; ++i) {
    double busy = BurnAndMeasure(*source);
    EXPECT_GE(busy, 0.0);
    EXPECT_LE(busy, 1.0);
  }
}

TEST(LoadSourceTest, CgroupReadGivesAFractionBetweenZeroAndOne) {
  // This process's own cgroup v2 directory (the single "0::" line of /proc/self/cgroup).
  Result<std::string> self = fe::test::ReadFile("/proc/self/cgroup");
  FE_ASSERT_OK(self);
  size_t at = self->find("0::");
  if (at == std::string::npos) GTEST_SKIP() << "no cgroup v2 hierarchy for this process";
  std::string relative = self->substr(at + 3, self->find('\n', at) - at - 3);
  if (relative == "/") relative.clear();
  // Unified hierarchy at /sys/fs/cgroup, or a hybrid one's v2 part at /sys/fs/cgroup/unified.
  std::string dir;
  for (std::string root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    if (dir.empty() && fe::test::ReadFile(root + relative + "/cpu.stat").ok()) dir = root + relative;
  }
  if (dir.empty()) GTEST_SKIP() << "no readable cpu.stat for cgroup '" << relative << "'";
  std::unique_ptr<LoadSource> source = MakeHostLoadSource(dir);
  double busy = BurnAndMeasure(*source);
  EXPECT_GE(busy, 0.0);
  EXPECT_LE(busy, 1.0);
}

TEST(LoadSourceTest, MissingCgroupDirectoryIsAnErrorNamingTheFile) {
  Result<fe::test::TempDir> temp = fe::test::TempDir::Create();
  FE_ASSERT_OK(temp);
  std::unique_ptr<LoadSource> source = MakeHostLoadSource(temp->Sub("no-such-cgroup"));
  Result<double> busy = source->BusyFraction();
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(busy.status().message().find("no-such-cgroup/cpu.stat"), std::string::npos) << busy.status().message();
}

}  // namespace
}  // namespace fe::engine::pools
