#include "storage/tree/sparse_copy.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <gtest/gtest.h>

#include "base/unique_fd.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"

namespace fe::storage::tree {
namespace {

using test::kGiB;
using test::kKiB;
using test::kMiB;
using test::ScratchFs;

class SparseCopyTest : public test::ScratchTest {
 protected:
  // Copies `source` to the new file `target` with SparseCopy of `size` bytes (default: whole file).
  static Result<uint64_t> Copy(const std::string& source, const std::string& target, int64_t size = -1) {
    UniqueFd in(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return Status::FromErrno(errno, "open", source);
    UniqueFd out(::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!out) return Status::FromErrno(errno, "open", target);
    if (size < 0) {
      struct stat st;
      if (::fstat(in.get(), &st) != 0) return Status::FromErrno(errno, "fstat", source);
      size = st.st_size;
    }
    Result<uint64_t> copied = SparseCopy(in.get(), out.get(), static_cast<uint64_t>(size), target);
    if (copied.ok() && ::fsync(out.get()) != 0) return Status::FromErrno(errno, "fsync", target);
    return copied;
  }

  static void ExpectSameContent(const std::string& a, const std::string& b) {
    Result<test::Digest> da = test::ContentDigest(a);
    Result<test::Digest> db = test::ContentDigest(b);
    ASSERT_TRUE(da.ok()) << da.status().ToString();
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    EXPECT_EQ(*da, *db) << ToString(*da) << " vs " << ToString(*db);
  }

  static uint64_t Allocated(const std::string& path) {
    Result<uint64_t> bytes = test::AllocatedBytes(path);
    EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
    return bytes.ok() ? *bytes : 0;
  }
};

// Leading hole, three 1 MiB data ranges, trailing hole.
const std::vector<test::DataRange> kRanges = {{4 * kMiB, kMiB}, {20 * kMiB, kMiB}, {40 * kMiB, kMiB}};
constexpr uint64_t kSparseSize = 64 * kMiB;

TEST_F(SparseCopyTest, CopyKeepsHolesSparseAndContentIdentical) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  FE_ASSERT_OK(test::MakeSparseFile(dir + "/source", kSparseSize, kRanges, 1));
  Result<uint64_t> copied = Copy(dir + "/source", dir + "/target");
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(*copied, 3 * kMiB);
  ExpectSameContent(dir + "/source", dir + "/target");
  struct stat st;
  ASSERT_EQ(::stat((dir + "/target").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kSparseSize);
  EXPECT_LE(Allocated(dir + "/target"), 3 * kMiB + 256 * kKiB);
  EXPECT_GE(Allocated(dir + "/target"), 3 * kMiB);
}

TEST_F(SparseCopyTest, CopyWithTrailingHoleSetsFullSize) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  FE_ASSERT_OK(test::MakeSparseFile(dir + "/source", 1 * kGiB, {{0, kMiB}}, 2));
  Result<uint64_t> copied = Copy(dir + "/source", dir + "/target");
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(*copied, kMiB);
  struct stat st;
  ASSERT_EQ(::stat((dir + "/target").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 1 * kGiB);
  EXPECT_LE(Allocated(dir + "/target"), kMiB + 256 * kKiB);
  ExpectSameContent(dir + "/source", dir + "/target");
}

TEST_F(SparseCopyTest, AllHoleFileCopiesNothingButSize) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  FE_ASSERT_OK(test::MakeSparseFile(dir + "/source", 100 * kMiB, {}, 3));
  Result<uint64_t> copied = Copy(dir + "/source", dir + "/target");
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(*copied, 0u);
  struct stat st;
  ASSERT_EQ(::stat((dir + "/target").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 100 * kMiB);
  EXPECT_EQ(st.st_blocks, 0);
}

TEST_F(SparseCopyTest, EmptyFileCopiesToEmptyFile) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  FE_ASSERT_OK(test::WriteFile(dir + "/source", ""));
  Result<uint64_t> copied = Copy(dir + "/source", dir + "/target");
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(*copied, 0u);
  Result<std::string> content = test::ReadFile(dir + "/target");
  ASSERT_TRUE(content.ok());
  EXPECT_EQ(*content, "");
}

TEST_F(SparseCopyTest, DenseFileWithOddSizeIsCopiedExactly) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  FE_ASSERT_OK(test::WritePatternFile(dir + "/source", 3 * kMiB + 12345, 4));
  Result<uint64_t> copied = Copy(dir + "/source", dir + "/target");
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(*copied, 3 * kMiB + 12345);
  Result<std::string> a = test::ReadFile(dir + "/source");
  Result<std::string> b = test::ReadFile(dir + "/target");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(*a == *b);
}

TEST_F(SparseCopyTest, CopiesOnlyTheRequestedPrefixAndSetsThatSize) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  FE_ASSERT_OK(test::WritePatternFile(dir + "/source", 2 * kMiB, 5));
  Result<uint64_t> copied = Copy(dir + "/source", dir + "/target", kMiB);
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(*copied, kMiB);
  Result<std::string> a = test::ReadFile(dir + "/source");
  Result<std::string> b = test::ReadFile(dir + "/target");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(b->size(), kMiB);
  EXPECT_TRUE(a->compare(0, kMiB, *b) == 0);
}

// Between filesystems of different types copy_file_range is refused (EXDEV): the read/write path
// must take over and still keep holes.
TEST_F(SparseCopyTest, AcrossFilesystemTypesFallsBackAndKeepsHoles) {
  FE_SCRATCH_DIR(xfs, ScratchFs::kXfs);
  FE_SCRATCH_DIR(ext4, ScratchFs::kExt4);
  FE_ASSERT_OK(test::MakeSparseFile(xfs + "/source", kSparseSize, kRanges, 6));
  Result<uint64_t> copied = Copy(xfs + "/source", ext4 + "/target");
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(*copied, 3 * kMiB);
  ExpectSameContent(xfs + "/source", ext4 + "/target");
  EXPECT_LE(Allocated(ext4 + "/target"), 3 * kMiB + 256 * kKiB);
}

TEST_F(SparseCopyTest, WithinXfsKeepsHolesAndSharesNothing) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  FE_ASSERT_OK(test::MakeSparseFile(dir + "/source", kSparseSize, kRanges, 7));
  Result<uint64_t> copied = Copy(dir + "/source", dir + "/target");
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  ExpectSameContent(dir + "/source", dir + "/target");
  EXPECT_LE(Allocated(dir + "/target"), 3 * kMiB + 256 * kKiB);
  Result<uint64_t> shared = test::SharedBytes(dir + "/target");
  ASSERT_TRUE(shared.ok()) << shared.status().ToString();
  // copy_file_range on XFS may itself reflink; either way the content above is what matters. When
  // it does share, writing the copy must still leave the source alone.
  FE_ASSERT_OK(test::OverwriteRange(dir + "/target", 4 * kMiB, kMiB, 99));
  Result<test::Digest> source = test::ContentDigest(dir + "/source");
  Result<test::Digest> target = test::ContentDigest(dir + "/target");
  ASSERT_TRUE(source.ok() && target.ok());
  EXPECT_NE(*source, *target);
}

TEST_F(SparseCopyTest, WriteErrorNamesThePath) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  FE_ASSERT_OK(test::WritePatternFile(dir + "/source", kMiB, 8));
  FE_ASSERT_OK(test::WriteFile(dir + "/target", ""));
  UniqueFd in(::open((dir + "/source").c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd read_only(::open((dir + "/target").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(in.valid() && read_only.valid());
  Result<uint64_t> copied = SparseCopy(in.get(), read_only.get(), kMiB, "volume/disk.img");
  ASSERT_FALSE(copied.ok());
  EXPECT_NE(copied.status().message().find("volume/disk.img"), std::string::npos) << copied.status().message();
  EXPECT_NE(copied.status().sys_errno(), 0);
}

}  // namespace
}  // namespace fe::storage::tree
