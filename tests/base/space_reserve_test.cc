// base/space_reserve.h on a real, tiny filesystem: the reserve takes room while there is some, gives
// it back to an operation that failed for want of space so the operation succeeds, and is made again
// once room is back.
#include "base/space_reserve.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "base/atomic_file.h"
#include "base/unique_fd.h"
#include "storage/loop/loop_filesystem.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe {
namespace {

// Fills the filesystem of `dir` with one file, leaving no free block.
Status Fill(const std::string& dir) {
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) != 0) return Status::FromErrno(errno, "statvfs", dir);
  UniqueFd fd(::open((dir + "/filler").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return Status::FromErrno(errno, "open", dir + "/filler");
  off_t size = static_cast<off_t>(fs.f_bavail) * static_cast<off_t>(fs.f_frsize);
  while (size > 0 && ::fallocate(fd.get(), 0, 0, size) != 0) size -= 4096;
  // What fallocate could not place (metadata, rounding), writes take.
  std::string block(4096, 'x');
  while (::write(fd.get(), block.data(), block.size()) > 0) {
  }
  return Status::Ok();
}

class SpaceReserveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FE_REQUIRE_LOOP();
    Result<test::TempDir> dir = test::TempDir::Create();
    FE_ASSERT_OK(dir);
    dir_.emplace(std::move(*dir));
    storage::loop::LoopFilesystemOptions options;
    options.type = storage::loop::LoopFilesystemType::kExt4;
    options.image_path = dir_->Sub("fs.img");
    options.size_bytes = uint64_t{64} << 20;
    options.mount_point = dir_->Sub("mnt");
    Result<storage::loop::LoopFilesystem> fs = storage::loop::LoopFilesystem::Open(options);
    FE_ASSERT_OK(fs);
    fs_.emplace(std::move(*fs));
    root_ = options.mount_point;
  }
  std::optional<test::TempDir> dir_;
  std::optional<storage::loop::LoopFilesystem> fs_;
  std::string root_;
};

TEST_F(SpaceReserveTest, OnAFullFilesystemTheReserveLetsAFailedWriteThroughAndComesBackWithRoom) {
  SpaceReserve reserve(root_ + "/.reserve", uint64_t{4} << 20);
  FE_ASSERT_OK(reserve.Refill());
  ASSERT_TRUE(reserve.held());
  FE_ASSERT_OK(Fill(root_));
  Status unaided = ReplaceFileDurably(root_ + "/state.json", std::string(64 * 1024, 's'));
  ASSERT_EQ(unaided.code(), ErrorCode::kNoSpace) << unaided.ToString();

  Status helped =
      reserve.WithRoom([&] { return ReplaceFileDurably(root_ + "/state.json", std::string(64 * 1024, 's')); });
  FE_EXPECT_OK(helped);
  EXPECT_FALSE(reserve.held());
  FE_EXPECT_OK(reserve.Refill());  // no room: Ok, without a reserve
  EXPECT_FALSE(reserve.held());

  ASSERT_EQ(::unlink((root_ + "/filler").c_str()), 0);
  FE_ASSERT_OK(reserve.Refill());
  EXPECT_TRUE(reserve.held());
  struct stat st {};
  ASSERT_EQ(::stat((root_ + "/.reserve").c_str(), &st), 0);
  EXPECT_GE(static_cast<uint64_t>(st.st_blocks) * 512, uint64_t{4} << 20);
}

TEST_F(SpaceReserveTest, OtherFailuresAreNotRetriedAndKeepTheReserve) {
  SpaceReserve reserve(root_ + "/.reserve", uint64_t{1} << 20);
  FE_ASSERT_OK(reserve.Refill());
  int calls = 0;
  Status failed = reserve.WithRoom([&] {
    ++calls;
    return Status::Io("not a space problem");
  });
  EXPECT_EQ(failed.code(), ErrorCode::kIo);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(reserve.held());
}

}  // namespace
}  // namespace fe
