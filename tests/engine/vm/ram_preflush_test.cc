#include "engine/vm/ram_preflush.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "tests/support/temp_dir.h"

namespace fe::engine::vm {
namespace {

constexpr size_t kFileBytes = 128u << 20;
constexpr size_t kPage = 4096;

// A file written through a shared mapping, as a VMM with a memory-backend-file writes guest RAM.
class RamFile {
 public:
  void SetUp(const std::string& path) {
    fd_ = UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd_) << path;
    ASSERT_EQ(::ftruncate(fd_.get(), kFileBytes), 0);
    void* map = ::mmap(nullptr, kFileBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    ASSERT_NE(map, MAP_FAILED);
    bytes_ = static_cast<unsigned char*>(map);
  }
  ~RamFile() {
    if (bytes_ != nullptr) ::munmap(bytes_, kFileBytes);
  }
  void DirtyAll() {
    for (size_t offset = 0; offset < kFileBytes; offset += kPage) bytes_[offset] += 1;
  }
  void DirtyRandomPage(std::mt19937& random) { bytes_[(random() % (kFileBytes / kPage)) * kPage] += 1; }
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  unsigned char* bytes_ = nullptr;
};

// Stands in for the cgroup throttle: records the steps and stops the "guest" at the first.
class StoppingThrottle final : public CpuThrottle {
 public:
  explicit StoppingThrottle(std::atomic<bool>& dirtying) : dirtying_(dirtying) {}
  Status Set(int percent) override {
    steps.push_back(percent);
    dirtying_ = false;
    return Status::Ok();
  }
  Status Release() override { return Status::Ok(); }
  std::vector<int> steps;

 private:
  std::atomic<bool>& dirtying_;
};

// A guest that keeps re-dirtying random pages of the file until told to stop (or destroyed).
class DirtyingGuest {
 public:
  DirtyingGuest(RamFile& ram, unsigned seed)
      : thread_([this, &ram, seed] {
          std::mt19937 random(seed);
          while (dirtying) {
            for (int i = 0; i < 256; ++i) ram.DirtyRandomPage(random);
          }
        }) {}
  ~DirtyingGuest() { Stop(); }
  void Stop() {
    dirtying = false;
    if (thread_.joinable()) thread_.join();
  }
  std::atomic<bool> dirtying{true};

 private:
  std::thread thread_;
};

class RamPreflushTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<test::TempDir> dir = test::TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    ram_.SetUp(dir_->Sub("mem.bin"));
  }
  std::optional<test::TempDir> dir_;
  RamFile ram_;
};

TEST_F(RamPreflushTest, DirtyBytesCountsThePagesWrittenThroughTheMappingUntilTheyAreWrittenBack) {
  ram_.DirtyAll();
  Result<std::optional<uint64_t>> dirty = DirtyBytes(ram_.fd());
  ASSERT_TRUE(dirty.ok()) << dirty.status().ToString();
  if (!dirty->has_value()) GTEST_SKIP() << "this kernel has no cachestat";
  EXPECT_GE(**dirty, kFileBytes * 9 / 10);
  ASSERT_TRUE(WriteBackDirtyPages(ram_.fd(), "mem.bin").ok());
  dirty = DirtyBytes(ram_.fd());
  ASSERT_TRUE(dirty.ok());
  EXPECT_EQ(**dirty, 0u);
}

TEST_F(RamPreflushTest, RoundsOfAGuestThatStoppedWritingLeaveNothingForThePause) {
  ram_.DirtyAll();
  Result<PreflushReport> report = PreflushRamFile(ram_.fd(), "mem.bin", PreflushPolicy{}, nullptr, SystemClock());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  if (!report->dirty_left.has_value()) GTEST_SKIP() << "this kernel has no cachestat";
  EXPECT_TRUE(report->converged);
  EXPECT_EQ(report->rounds, 1);
  EXPECT_GE(report->written_bytes, kFileBytes * 9 / 10);
  EXPECT_EQ(*report->dirty_left, 0u);
  EXPECT_EQ(report->throttle_percent, 0);
  EXPECT_LT(report->throttle_started_us, 0);
}

TEST_F(RamPreflushTest, ACleanFileNeedsNoRound) {
  Result<PreflushReport> report = PreflushRamFile(ram_.fd(), "mem.bin", PreflushPolicy{}, nullptr, SystemClock());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  if (!report->dirty_left.has_value()) GTEST_SKIP() << "this kernel has no cachestat";
  EXPECT_EQ(report->rounds, 0);
  EXPECT_TRUE(report->converged);
}

// A guest that re-dirties its pages as fast as the rounds write them back: the rounds stall, the
// throttle is applied, and (the throttle here stopping the writer) the next rounds converge.
TEST_F(RamPreflushTest, RoundsThatStopShrinkingThrottleTheGuestAndThenConverge) {
  ram_.DirtyAll();
  DirtyingGuest guest(ram_, 7);
  StoppingThrottle throttle(guest.dirtying);
  PreflushPolicy policy;
  policy.pause_target = std::chrono::microseconds(1);  // only kSmallRemainder counts as converged
  policy.max_time = std::chrono::milliseconds(20'000);
  Result<PreflushReport> report = PreflushRamFile(ram_.fd(), "mem.bin", policy, &throttle, SystemClock());
  guest.Stop();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  if (!report->dirty_left.has_value()) GTEST_SKIP() << "this kernel has no cachestat";
  ASSERT_EQ(throttle.steps, std::vector<int>{50});
  EXPECT_EQ(report->throttle_percent, 50);
  EXPECT_GE(report->throttle_started_us, 0);
  EXPECT_TRUE(report->converged);
  EXPECT_LE(*report->dirty_left, kSmallRemainder);
  EXPECT_GE(report->rounds, 2);
}

TEST_F(RamPreflushTest, WithoutAThrottleStalledRoundsGiveUpBeforeTheirTimeIsOver) {
  ram_.DirtyAll();
  DirtyingGuest guest(ram_, 11);
  PreflushPolicy policy;
  policy.pause_target = std::chrono::microseconds(1);
  policy.max_time = std::chrono::milliseconds(60'000);
  Result<PreflushReport> report = PreflushRamFile(ram_.fd(), "mem.bin", policy, nullptr, SystemClock());
  guest.Stop();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  if (!report->dirty_left.has_value()) GTEST_SKIP() << "this kernel has no cachestat";
  EXPECT_FALSE(report->converged);
  EXPECT_LT(report->preflush_us, 60'000'000);
  EXPECT_LT(report->rounds, policy.max_rounds);
  EXPECT_GT(*report->dirty_left, kSmallRemainder);
}

}  // namespace
}  // namespace fe::engine::vm
