#include "storage/tree/reflink_probe.h"

#include <fcntl.h>
#include <linux/magic.h>

#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"

namespace fe::storage::tree {
namespace {

using test::ScratchFs;

class ReflinkProbeTest : public test::ScratchTest {};

TEST_F(ReflinkProbeTest, XfsWithReflinkProbesTrue) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  Result<FilesystemProbe> probe = ProbeFilesystem(dir);
  ASSERT_TRUE(probe.ok()) << probe.status().ToString();
  EXPECT_EQ(probe->filesystem, "xfs");
  EXPECT_EQ(probe->magic, 0x58465342u);
  EXPECT_TRUE(probe->reflink) << probe->reason;
  EXPECT_FALSE(probe->reason.empty());
}

TEST_F(ReflinkProbeTest, BtrfsProbesTrue) {
  FE_SCRATCH_DIR(dir, ScratchFs::kBtrfs);
  Result<FilesystemProbe> probe = ProbeFilesystem(dir);
  ASSERT_TRUE(probe.ok()) << probe.status().ToString();
  EXPECT_EQ(probe->filesystem, "btrfs");
  EXPECT_EQ(probe->magic, static_cast<uint64_t>(BTRFS_SUPER_MAGIC));
  EXPECT_TRUE(probe->reflink) << probe->reason;
}

TEST_F(ReflinkProbeTest, Ext4ProbesFalseWithReason) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  Result<FilesystemProbe> probe = ProbeFilesystem(dir);
  ASSERT_TRUE(probe.ok()) << probe.status().ToString();
  EXPECT_EQ(probe->filesystem, "ext4");
  EXPECT_EQ(probe->magic, static_cast<uint64_t>(EXT4_SUPER_MAGIC));
  EXPECT_FALSE(probe->reflink);
  EXPECT_NE(probe->reason.find("FICLONE"), std::string::npos) << probe->reason;
}

TEST_F(ReflinkProbeTest, ProbeByFdMatchesProbeByPath) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  Result<FilesystemProbe> probe = ProbeFilesystem(fd.get());
  ASSERT_TRUE(probe.ok()) << probe.status().ToString();
  EXPECT_EQ(probe->filesystem, "xfs");
  EXPECT_TRUE(probe->reflink) << probe->reason;
}

TEST_F(ReflinkProbeTest, ProbeLeavesNoFilesBehind) {
  for (ScratchFs fs : {ScratchFs::kXfs, ScratchFs::kExt4}) {
    FE_SCRATCH_DIR(dir, fs);
    FE_ASSERT_OK(test::WriteFile(dir + "/existing", "x"));
    Result<FilesystemProbe> probe = ProbeFilesystem(dir);
    ASSERT_TRUE(probe.ok()) << probe.status().ToString();
    Result<std::vector<std::string>> names = test::ListDir(dir);
    ASSERT_TRUE(names.ok()) << names.status().ToString();
    EXPECT_EQ(*names, std::vector<std::string>{"existing"}) << test::ScratchFsName(fs);
  }
}

TEST_F(ReflinkProbeTest, MissingDirectoryIsNotFoundNamingIt) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  std::string missing = dir + "/does-not-exist";
  Result<FilesystemProbe> probe = ProbeFilesystem(missing);
  ASSERT_FALSE(probe.ok());
  EXPECT_EQ(probe.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(probe.status().message().find(missing), std::string::npos) << probe.status().message();
}

TEST(FilesystemNameTest, NamesKnownMagicsAndHexForUnknown) {
  EXPECT_EQ(FilesystemName(0x58465342), "xfs");
  EXPECT_EQ(FilesystemName(BTRFS_SUPER_MAGIC), "btrfs");
  EXPECT_EQ(FilesystemName(EXT4_SUPER_MAGIC), "ext4");
  EXPECT_EQ(FilesystemName(0x12345678), "0x12345678");
}

}  // namespace
}  // namespace fe::storage::tree
