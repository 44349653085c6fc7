#include "engine/vm/ram_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "tests/support/temp_dir.h"

namespace fe::engine::vm {
namespace {

constexpr uint64_t kBytes = 32u << 20;

class RamFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<test::TempDir> dir = test::TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    ASSERT_EQ(::mkdir(dir_->Sub("vol").c_str(), 0755), 0);
  }
  std::string Volume() const { return dir_->Sub("vol"); }
  struct stat Stat(const std::string& path) const {
    struct stat info {};
    EXPECT_EQ(::lstat(path.c_str(), &info), 0) << path;
    return info;
  }
  std::optional<test::TempDir> dir_;
};

// A sparse file written at every other 64 KiB, as a booted guest leaves its RAM file.
void WriteSparse(const std::string& path, uint64_t bytes) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd);
  ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(bytes)), 0);
  const char one = 1;
  for (uint64_t offset = 0; offset < bytes; offset += 128 << 10) {
    ASSERT_EQ(::pwrite(fd.get(), &one, 1, static_cast<off_t>(offset)), 1);
  }
  ASSERT_EQ(::fsync(fd.get()), 0);
}

TEST_F(RamFileTest, AFragmentedSparseFileIsReplacedByOneWrittenInFullWithZeros) {
  const std::string path = Volume() + "/mem.bin";
  WriteSparse(path, kBytes);
  UniqueFd before_fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  Result<uint64_t> before = ExtentCount(before_fd.get(), path);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_GT(*before, kLaidOutExtents);

  Result<bool> laid_out = LayOutRamFileForBoot(Volume(), {path, kBytes});
  ASSERT_TRUE(laid_out.ok()) << laid_out.status().ToString();
  EXPECT_TRUE(*laid_out);
  const struct stat info = Stat(path);
  EXPECT_TRUE(S_ISREG(info.st_mode));
  EXPECT_EQ(static_cast<uint64_t>(info.st_size), kBytes);
  EXPECT_GE(static_cast<uint64_t>(info.st_blocks) * 512, kBytes) << "allocated in full";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  Result<uint64_t> extents = ExtentCount(fd.get(), path);
  ASSERT_TRUE(extents.ok());
  EXPECT_LE(*extents, kLaidOutExtents);
  char byte = 1;
  ASSERT_EQ(::pread(fd.get(), &byte, 1, 0), 1);
  EXPECT_EQ(byte, 0) << "the old content is gone: a boot starts afresh";
}

TEST_F(RamFileTest, AFileLaidOutAlreadyIsLeftAsItIs) {
  const std::string path = Volume() + "/mem.bin";
  ASSERT_TRUE(LayOutRamFileForBoot(Volume(), {path, kBytes}).ok());
  const ino_t inode = Stat(path).st_ino;
  Result<bool> again = LayOutRamFileForBoot(Volume(), {path, kBytes});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(*again);
  EXPECT_EQ(Stat(path).st_ino, inode);
}

TEST_F(RamFileTest, AMissingFileInASubdirectoryIsCreatedAndAResizedGuestGetsANewFile) {
  ASSERT_EQ(::mkdir((Volume() + "/ram").c_str(), 0755), 0);
  const std::string path = Volume() + "/ram/mem.bin";
  ASSERT_TRUE(LayOutRamFileForBoot(Volume(), {path, kBytes}).ok());
  EXPECT_EQ(static_cast<uint64_t>(Stat(path).st_size), kBytes);
  Result<bool> grown = LayOutRamFileForBoot(Volume(), {path, 2 * kBytes});
  ASSERT_TRUE(grown.ok()) << grown.status().ToString();
  EXPECT_TRUE(*grown);
  EXPECT_EQ(static_cast<uint64_t>(Stat(path).st_size), 2 * kBytes);
}

TEST_F(RamFileTest, ASymlinkNamedAsTheRamFileIsReplacedAndItsTargetNeverWritten) {
  const std::string outside = dir_->Sub("outside");
  WriteSparse(outside, 1 << 20);
  const std::string path = Volume() + "/mem.bin";
  ASSERT_EQ(::symlink(outside.c_str(), path.c_str()), 0);
  ASSERT_TRUE(LayOutRamFileForBoot(Volume(), {path, kBytes}).ok());
  EXPECT_TRUE(S_ISREG(Stat(path).st_mode));
  EXPECT_EQ(Stat(outside).st_size, 1 << 20) << "the link's target is untouched";
}

TEST_F(RamFileTest, APathThroughASymlinkedDirectoryIsRefused) {
  ASSERT_EQ(::mkdir(dir_->Sub("elsewhere").c_str(), 0755), 0);
  ASSERT_EQ(::symlink(dir_->Sub("elsewhere").c_str(), (Volume() + "/ram").c_str()), 0);
  Result<bool> laid_out = LayOutRamFileForBoot(Volume(), {Volume() + "/ram/mem.bin", kBytes});
  EXPECT_FALSE(laid_out.ok());
  struct stat info {};
  EXPECT_NE(::stat(dir_->Sub("elsewhere/mem.bin").c_str(), &info), 0) << "nothing written outside the volume";
}

TEST_F(RamFileTest, APathOutsideTheVolumeIsRefused) {
  Result<bool> laid_out = LayOutRamFileForBoot(Volume(), {dir_->Sub("mem.bin"), kBytes});
  EXPECT_EQ(laid_out.status().code(), ErrorCode::kInvalidArgument) << laid_out.status().ToString();
}

}  // namespace
}  // namespace fe::engine::vm
