// The agent's filesystem freeze: which mounts it covers (parsed from /proc/self/mounts text), and the
// real FIFREEZE/FITHAW on a loop-mounted XFS of the test's own (the freezer is given a mounts file
// naming only it: the host's own filesystems are never frozen), with its deadline.
#include "hypervisor/forkagent/filesystem_freeze.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>

#include "storage/loop/loop_filesystem.h"
#include "tests/support/file_util.h"
#include "tests/support/temp_dir.h"

namespace fe::hypervisor::forkagent {
namespace {

using namespace std::chrono_literals;

TEST(FilesystemFreezeTest, FreezableMountsAreTheReadWriteBlockDeviceOnesInReverseMountOrder) {
  const std::string mounts =
      "/dev/root / ext4 rw,relatime 0 0\n"
      "proc /proc proc rw,nosuid 0 0\n"
      "tmpfs /tmp tmpfs rw 0 0\n"
      "/dev/vdb /data xfs rw,relatime 0 0\n"
      "/dev/vdc /srv/read\\040only ext4 ro,relatime 0 0\n"
      "/dev/vdd /srv/with\\040space ext4 rw 0 0\n"
      "devtmpfs /dev devtmpfs rw 0 0\n";
  EXPECT_EQ(FreezableMounts(mounts), (std::vector<std::string>{"/srv/with space", "/data", "/"}));
  EXPECT_TRUE(FreezableMounts("rootfs / rootfs rw 0 0\nnone /fill tmpfs rw 0 0\n").empty())
      << "an initramfs guest has nothing to freeze";
}

TEST(FilesystemFreezeTest, BlockDeviceSwapsAreThePartitionsInProcSwaps) {
  const std::string swaps =
      "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
      "/dev/vdc                                partition\t1048572\t\t0\t\t-2\n"
      "/swapfile                               file\t\t524284\t\t0\t\t-3\n";
  EXPECT_EQ(BlockDeviceSwaps(swaps), std::vector<std::string>{"/dev/vdc"});
}

class FilesystemFreezeOnXfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!storage::loop::LoopFilesystem::Available(&why)) GTEST_SKIP() << why;
    Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    storage::loop::LoopFilesystemOptions options;
    options.type = storage::loop::LoopFilesystemType::kXfs;
    options.image_path = dir_->Sub("xfs.img");
    options.size_bytes = 512ull << 20;
    options.mount_point = dir_->Sub("mnt");
    Result<storage::loop::LoopFilesystem> fs = storage::loop::LoopFilesystem::Open(options);
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    fs_.emplace(std::move(*fs));
    mounts_ = dir_->Sub("mounts");
    swaps_ = dir_->Sub("swaps");
    ASSERT_TRUE(fe::test::WriteFile(mounts_, "/dev/loop99 " + options.mount_point + " xfs rw,relatime 0 0\n").ok());
    ASSERT_TRUE(fe::test::WriteFile(swaps_, "Filename Type Size Used Priority\n").ok());
  }

  // Whether a child process's write of a new file on the filesystem finishes within `wait`; a write
  // that does not is left blocked and completes after the thaw (the caller reaps it with Reap).
  bool WriteFinishesWithin(std::chrono::milliseconds wait) {
    writer_ = ::fork();
    if (writer_ == 0) {
      int fd = ::open((fs_->mount_point() + "/written").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::_exit(fd >= 0 && ::write(fd, "x", 1) == 1 && ::fsync(fd) == 0 ? 0 : 1);
    }
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(writer_, &status, WNOHANG) == writer_) {
        writer_ = -1;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
      }
      usleep(10'000);
    }
    return false;
  }
  // Waits for a blocked writer; true when its write succeeded.
  bool Reap() {
    int status = 0;
    if (writer_ <= 0 || ::waitpid(writer_, &status, 0) != writer_) return false;
    writer_ = -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  void TearDown() override {
    if (writer_ > 0) ::waitpid(writer_, nullptr, 0);
  }

  std::optional<fe::test::TempDir> dir_;
  std::optional<storage::loop::LoopFilesystem> fs_;
  std::string mounts_;
  std::string swaps_;
  pid_t writer_ = -1;
};

TEST_F(FilesystemFreezeOnXfsTest, AFrozenFilesystemBlocksWritersUntilTheThaw) {
  SystemFilesystemFreezer freezer(mounts_, swaps_);
  Result<std::vector<std::string>> frozen = freezer.Freeze(60s);
  ASSERT_TRUE(frozen.ok()) << frozen.status().ToString();
  EXPECT_EQ(*frozen, std::vector<std::string>{fs_->mount_point()});
  EXPECT_FALSE(WriteFinishesWithin(300ms)) << "a write went through a frozen filesystem";
  EXPECT_EQ(freezer.Freeze(60s).status().code(), ErrorCode::kFailedPrecondition) << "frozen already";
  Result<ThawOutcome> thawed = freezer.Thaw();
  ASSERT_TRUE(thawed.ok()) << thawed.status().ToString();
  EXPECT_TRUE(thawed->held);
  EXPECT_EQ(thawed->thawed, std::vector<std::string>{fs_->mount_point()});
  EXPECT_TRUE(Reap()) << "the blocked write finishes after the thaw";
  EXPECT_TRUE(WriteFinishesWithin(5s));
}

TEST_F(FilesystemFreezeOnXfsTest, TheDeadlineThawsAFreezeNobodyEnded) {
  SystemFilesystemFreezer freezer(mounts_, swaps_);
  ASSERT_TRUE(freezer.Freeze(200ms).ok());
  EXPECT_TRUE(WriteFinishesWithin(10s)) << "the deadline did not thaw the filesystem";
  Result<ThawOutcome> thawed = freezer.Thaw();
  ASSERT_TRUE(thawed.ok()) << thawed.status().ToString();
  EXPECT_FALSE(thawed->held) << "the freeze had ended at its deadline";
  EXPECT_TRUE(thawed->thawed.empty());
}

TEST_F(FilesystemFreezeOnXfsTest, ASwapDiskOrAMountThatCannotFreezeFailsTheFreezeAndLeavesNothingFrozen) {
  ASSERT_TRUE(fe::test::WriteFile(swaps_, "Filename Type Size Used Priority\n/dev/vdc partition 1048572 0 -2\n").ok());
  SystemFilesystemFreezer with_swap(mounts_, swaps_);
  Result<std::vector<std::string>> refused = with_swap.Freeze(60s);
  EXPECT_EQ(refused.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("/dev/vdc"), std::string::npos) << refused.status().ToString();
  EXPECT_TRUE(WriteFinishesWithin(5s));

  // The XFS is frozen first (reverse mount order), then a mount point that does not exist fails.
  ASSERT_TRUE(fe::test::WriteFile(swaps_, "Filename Type Size Used Priority\n").ok());
  ASSERT_TRUE(fe::test::WriteFile(mounts_, "/dev/loop98 " + dir_->Sub("missing") + " ext4 rw 0 0\n/dev/loop99 " +
                                               fs_->mount_point() + " xfs rw 0 0\n")
                  .ok());
  SystemFilesystemFreezer partial(mounts_, swaps_);
  Result<std::vector<std::string>> failed = partial.Freeze(60s);
  EXPECT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("missing"), std::string::npos) << failed.status().ToString();
  EXPECT_TRUE(WriteFinishesWithin(5s)) << "what the failed freeze froze was not thawed";
}

}  // namespace
}  // namespace fe::hypervisor::forkagent
