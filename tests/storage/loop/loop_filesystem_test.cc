#include "storage/loop/loop_filesystem.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "base/process.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"

namespace fe::storage::loop {

void PrintTo(LoopFilesystemType type, std::ostream* os) { *os << LoopFilesystemTypeName(type); }

namespace {

using test::kMiB;

class LoopFilesystemTest : public test::ScratchTest {
 protected:
  void SetUp() override {
    std::string why;
    if (!LoopFilesystem::Available(&why)) GTEST_SKIP() << why;
    test::ScratchResult host = test::Scratch::HostDir();
    ASSERT_TRUE(host.status.ok()) << host.status.ToString();
    dir_ = host.path + "/" + test::CurrentTestName();
    ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0);
  }

  LoopFilesystemOptions Options(LoopFilesystemType type, uint64_t size = 512 * kMiB) const {
    LoopFilesystemOptions options;
    options.type = type;
    options.image_path = dir_ + "/image";
    options.size_bytes = size;
    options.mount_point = dir_ + "/mnt";
    return options;
  }

  static bool Exists(const std::string& path) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
  }

  // Autoclear may detach asynchronously after the unmount; give it a moment.
  static std::vector<std::string> LoopDevicesSettled(const std::string& image) {
    std::vector<std::string> devices;
    for (int i = 0; i < 100; ++i) {
      devices = test::LoopDevicesBackedBy(image);
      if (devices.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return devices;
  }

  std::string dir_;
};

TEST_F(LoopFilesystemTest, AvailableAsRootWithLoopControl) {
  std::string why = "unset";
  EXPECT_TRUE(LoopFilesystem::Available(&why));
  EXPECT_EQ(why, "");
}

TEST(LoopFilesystemTypeNameTest, NamesAreMountTypes) {
  EXPECT_EQ(LoopFilesystemTypeName(LoopFilesystemType::kXfs), "xfs");
  EXPECT_EQ(LoopFilesystemTypeName(LoopFilesystemType::kBtrfs), "btrfs");
  EXPECT_EQ(LoopFilesystemTypeName(LoopFilesystemType::kExt4), "ext4");
}

class LoopFilesystemTypeTest : public LoopFilesystemTest, public ::testing::WithParamInterface<LoopFilesystemType> {};

TEST_P(LoopFilesystemTypeTest, OpenFormatsSparseImageAndMountsIt) {
  LoopFilesystemOptions options = Options(GetParam());
  Result<LoopFilesystem> fs = LoopFilesystem::Open(options);
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  EXPECT_EQ(fs->mount_point(), options.mount_point);
  EXPECT_EQ(fs->image_path(), options.image_path);
  EXPECT_EQ(fs->type(), GetParam());
  EXPECT_EQ(fs->device().rfind("/dev/loop", 0), 0u) << fs->device();
  EXPECT_EQ(test::MountedFsType(options.mount_point), LoopFilesystemTypeName(GetParam()));
  EXPECT_EQ(test::LoopDevicesBackedBy(options.image_path), std::vector<std::string>{fs->device()});

  struct stat st;
  ASSERT_EQ(::stat(options.image_path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), options.size_bytes);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, options.size_bytes / 2) << "image not sparse";

  FE_EXPECT_OK(test::WriteFile(options.mount_point + "/hello", "world"));
}

TEST_P(LoopFilesystemTypeTest, CloseUnmountsDetachesAndRemovesImage) {
  LoopFilesystemOptions options = Options(GetParam());
  Result<LoopFilesystem> fs = LoopFilesystem::Open(options);
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  FE_EXPECT_OK(fs->Close());
  EXPECT_EQ(test::MountedFsType(options.mount_point), "");
  EXPECT_FALSE(Exists(options.image_path));
  EXPECT_TRUE(LoopDevicesSettled(options.image_path).empty());
  FE_EXPECT_OK(fs->Close());  // idempotent
}

INSTANTIATE_TEST_SUITE_P(AllTypes, LoopFilesystemTypeTest,
                         ::testing::Values(LoopFilesystemType::kXfs, LoopFilesystemType::kBtrfs,
                                           LoopFilesystemType::kExt4),
                         [](const auto& info) { return std::string(LoopFilesystemTypeName(info.param)); });

TEST_F(LoopFilesystemTest, XfsIsFormattedWithReflink) {
  LoopFilesystemOptions options = Options(LoopFilesystemType::kXfs);
  Result<LoopFilesystem> fs = LoopFilesystem::Open(options);
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  Result<ProcessResult> info = RunProcess({"xfs_info", options.mount_point});
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_NE(info->output.find("reflink=1"), std::string::npos) << info->output;
}

TEST_F(LoopFilesystemTest, DestructorTearsDown) {
  LoopFilesystemOptions options = Options(LoopFilesystemType::kExt4, 16 * kMiB);
  {
    Result<LoopFilesystem> fs = LoopFilesystem::Open(options);
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    ASSERT_EQ(test::MountedFsType(options.mount_point), "ext4");
  }
  EXPECT_EQ(test::MountedFsType(options.mount_point), "");
  EXPECT_FALSE(Exists(options.image_path));
  EXPECT_TRUE(LoopDevicesSettled(options.image_path).empty());
}

TEST_F(LoopFilesystemTest, MovedFromObjectDoesNotTearDown) {
  LoopFilesystemOptions options = Options(LoopFilesystemType::kExt4, 16 * kMiB);
  Result<LoopFilesystem> fs = LoopFilesystem::Open(options);
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  {
    LoopFilesystem moved(std::move(*fs));
    FE_EXPECT_OK(fs->Close());  // the moved-from object owns nothing
    EXPECT_EQ(test::MountedFsType(options.mount_point), "ext4");
    EXPECT_EQ(moved.mount_point(), options.mount_point);

    LoopFilesystemOptions other = options;
    other.image_path = dir_ + "/image2";
    other.mount_point = dir_ + "/mnt2";
    Result<LoopFilesystem> second = LoopFilesystem::Open(other);
    ASSERT_TRUE(second.ok()) << second.status().ToString();
    moved = std::move(*second);  // tears down the first, takes over the second
    EXPECT_EQ(test::MountedFsType(options.mount_point), "");
    EXPECT_FALSE(Exists(options.image_path));
    EXPECT_EQ(test::MountedFsType(other.mount_point), "ext4");
  }
  EXPECT_EQ(test::MountedFsType(dir_ + "/mnt2"), "");
  EXPECT_FALSE(Exists(dir_ + "/image2"));
}

TEST_F(LoopFilesystemTest, KeptImageIsRemountedWithItsData) {
  LoopFilesystemOptions options = Options(LoopFilesystemType::kExt4, 16 * kMiB);
  options.keep_image = true;
  {
    Result<LoopFilesystem> fs = LoopFilesystem::Open(options);
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    FE_ASSERT_OK(test::WriteFile(options.mount_point + "/persisted", "still here"));
    FE_ASSERT_OK(fs->Close());
  }
  ASSERT_TRUE(Exists(options.image_path));
  EXPECT_FALSE(Exists(options.mount_point + "/persisted"));  // unmounted

  // An existing image is mounted as it is, not formatted again.
  options.keep_image = false;
  Result<LoopFilesystem> fs = LoopFilesystem::Open(options);
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  Result<std::string> content = test::ReadFile(options.mount_point + "/persisted");
  ASSERT_TRUE(content.ok()) << content.status().ToString();
  EXPECT_EQ(*content, "still here");
}

TEST_F(LoopFilesystemTest, MountPointIsCreatedWhenMissing) {
  LoopFilesystemOptions options = Options(LoopFilesystemType::kExt4, 16 * kMiB);
  options.mount_point = dir_ + "/new-mount-point";
  ASSERT_FALSE(Exists(options.mount_point));
  Result<LoopFilesystem> fs = LoopFilesystem::Open(options);
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  EXPECT_EQ(test::MountedFsType(options.mount_point), "ext4");
}

TEST_F(LoopFilesystemTest, TooSmallXfsImageIsInvalidArgumentAndLeavesNothing) {
  LoopFilesystemOptions options = Options(LoopFilesystemType::kXfs, 64 * kMiB);
  Result<LoopFilesystem> fs = LoopFilesystem::Open(options);
  ASSERT_FALSE(fs.ok());
  EXPECT_EQ(fs.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(fs.status().message().find(options.image_path), std::string::npos) << fs.status().message();
  EXPECT_FALSE(Exists(options.image_path));
}

TEST_F(LoopFilesystemTest, MissingImageDirectoryIsNotFoundNamingImage) {
  LoopFilesystemOptions options = Options(LoopFilesystemType::kExt4, 16 * kMiB);
  options.image_path = dir_ + "/no-such-dir/image";
  Result<LoopFilesystem> fs = LoopFilesystem::Open(options);
  ASSERT_FALSE(fs.ok());
  EXPECT_EQ(fs.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(fs.status().message().find(options.image_path), std::string::npos) << fs.status().message();
}

TEST_F(LoopFilesystemTest, MountPointThatIsAFileFailsAndRemovesNewImage) {
  LoopFilesystemOptions options = Options(LoopFilesystemType::kExt4, 16 * kMiB);
  FE_ASSERT_OK(test::WriteFile(options.mount_point, "not a directory"));
  Result<LoopFilesystem> fs = LoopFilesystem::Open(options);
  ASSERT_FALSE(fs.ok());
  EXPECT_NE(fs.status().message().find(options.mount_point), std::string::npos) << fs.status().message();
  EXPECT_FALSE(Exists(options.image_path));
  EXPECT_TRUE(LoopDevicesSettled(options.image_path).empty());
}

TEST_F(LoopFilesystemTest, UnformattedExistingImageFailsToMountAndIsKeptAndDetached) {
  LoopFilesystemOptions options = Options(LoopFilesystemType::kXfs);
  {
    // An existing image is never formatted: this one holds no filesystem.
    FE_ASSERT_OK(test::WriteFile(options.image_path, ""));
    ASSERT_EQ(::truncate(options.image_path.c_str(), 512 * kMiB), 0);
  }
  Result<LoopFilesystem> fs = LoopFilesystem::Open(options);
  ASSERT_FALSE(fs.ok());
  const std::string& message = fs.status().message();
  EXPECT_NE(message.find("mount"), std::string::npos) << message;
  EXPECT_NE(message.find("/dev/loop"), std::string::npos) << message;
  EXPECT_NE(message.find(options.mount_point), std::string::npos) << message;
  EXPECT_TRUE(Exists(options.image_path)) << "an existing image must never be deleted";
  EXPECT_EQ(test::MountedFsType(options.mount_point), "");
  EXPECT_TRUE(LoopDevicesSettled(options.image_path).empty());
}

TEST_F(LoopFilesystemTest, BusyMountPointStillTearsDown) {
  LoopFilesystemOptions options = Options(LoopFilesystemType::kExt4, 16 * kMiB);
  Result<LoopFilesystem> fs = LoopFilesystem::Open(options);
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  FE_ASSERT_OK(test::WriteFile(options.mount_point + "/held", "x"));
  int held = ::open((options.mount_point + "/held").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  Status status = fs->Close();
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), ErrorCode::kBusy);
  EXPECT_NE(status.message().find(options.mount_point), std::string::npos) << status.message();
  // Lazily detached: gone from the namespace now, device released once the last file closes.
  EXPECT_EQ(test::MountedFsType(options.mount_point), "");
  ::close(held);
  EXPECT_TRUE(LoopDevicesSettled(options.image_path).empty());
}

}  // namespace
}  // namespace fe::storage::loop
