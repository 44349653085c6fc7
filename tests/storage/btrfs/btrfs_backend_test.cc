// The btrfs backend on a real loop-mounted btrfs: snapshots, the small-tree crossover, plain-directory
// sources, read-only templates and removal of nested and read-only subvolumes.
#include "storage/btrfs/btrfs_backend.h"

#include <btrfsutil.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/support/file_util.h"
#include "tests/support/scratch.h"

namespace fe::storage::btrfs {
namespace {

using test::ScratchFs;

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

class BtrfsBackendTest : public test::ScratchTest {
 protected:
  static std::unique_ptr<BtrfsBackend> Open(const std::string& root, size_t snapshot_min_entries) {
    Result<std::unique_ptr<BtrfsBackend>> backend = BtrfsBackend::Open(root, "test", snapshot_min_entries);
    EXPECT_TRUE(backend.ok()) << backend.status().ToString();
    return backend.ok() ? std::move(*backend) : nullptr;
  }

  // A subvolume volume holding `files` small files and one 4 MiB file.
  static void MakeVolume(BtrfsBackend& backend, const std::string& volume, int files) {
    FE_ASSERT_OK(backend.Create(volume));
    for (int i = 0; i < files; ++i) {
      FE_ASSERT_OK(test::WriteFile(backend.Path(volume) + "/f" + std::to_string(i), "file " + std::to_string(i)));
    }
    FE_ASSERT_OK(test::WritePatternFile(backend.Path(volume) + "/disk.raw", 4 * test::kMiB, 7));
  }
};

TEST_F(BtrfsBackendTest, CreateMakesASubvolume) {
  FE_SCRATCH_DIR(dir, ScratchFs::kBtrfs);
  auto backend = Open(dir, 0);
  ASSERT_NE(backend, nullptr);
  FE_ASSERT_OK(backend->Create("vm"));
  Result<bool> subvolume = backend->IsSubvolume("vm");
  FE_ASSERT_OK(subvolume);
  EXPECT_TRUE(*subvolume);
  EXPECT_EQ(backend->Create("vm").code(), ErrorCode::kAlreadyExists);
}

TEST_F(BtrfsBackendTest, CloneOfSubvolumeIsAWritableSnapshotSharingEverything) {
  FE_SCRATCH_DIR(dir, ScratchFs::kBtrfs);
  auto backend = Open(dir, 0);
  ASSERT_NE(backend, nullptr);
  MakeVolume(*backend, "template", 10);
  ::sync();
  Result<test::TreeSnapshot> before = test::SnapshotTree(backend->Path("template"));
  FE_ASSERT_OK(before);

  Result<CloneReport> report = backend->Clone("template", "fork");
  FE_ASSERT_OK(report);
  EXPECT_EQ(report->mechanism, "btrfs-snapshot");
  Result<bool> subvolume = backend->IsSubvolume("fork");
  FE_ASSERT_OK(subvolume);
  EXPECT_TRUE(*subvolume);
  Result<uint64_t> shared = test::SharedBytes(backend->Path("fork") + "/disk.raw");
  FE_ASSERT_OK(shared);
  EXPECT_EQ(*shared, 4 * test::kMiB);

  FE_ASSERT_OK(test::OverwriteRange(backend->Path("fork") + "/disk.raw", 0, test::kMiB, 99));
  FE_ASSERT_OK(test::WriteFile(backend->Path("fork") + "/new", "only in the fork"));
  ::sync();
  Result<VolumeUsage> usage = backend->Usage("fork");
  FE_ASSERT_OK(usage);
  ASSERT_TRUE(usage->exclusive_bytes().has_value());
  EXPECT_GE(*usage->exclusive_bytes(), test::kMiB);  // the overwritten MiB is the fork's alone
  EXPECT_LT(*usage->exclusive_bytes(), 2 * test::kMiB);
  Result<test::TreeSnapshot> after = test::SnapshotTree(backend->Path("template"));
  FE_ASSERT_OK(after);
  EXPECT_EQ(test::DiffSnapshots(*before, *after), "");
}

TEST_F(BtrfsBackendTest, SmallTreeBelowCrossoverIsReflinkedInsteadOfSnapshotted) {
  FE_SCRATCH_DIR(dir, ScratchFs::kBtrfs);
  auto backend = Open(dir, 64);
  ASSERT_NE(backend, nullptr);
  MakeVolume(*backend, "small", 3);
  MakeVolume(*backend, "large", 100);

  Result<CloneReport> small = backend->Clone("small", "small-fork");
  FE_ASSERT_OK(small);
  EXPECT_EQ(small->mechanism, "reflink");
  EXPECT_NE(small->note.find("crossover"), std::string::npos) << small->note;
  EXPECT_EQ(small->files, 4u);

  Result<CloneReport> large = backend->Clone("large", "large-fork");
  FE_ASSERT_OK(large);
  EXPECT_EQ(large->mechanism, "btrfs-snapshot");
}

TEST_F(BtrfsBackendTest, PlainDirectorySourceIsReflinkedIntoANewSubvolumeAndSaysSo) {
  FE_SCRATCH_DIR(dir, ScratchFs::kBtrfs);
  auto backend = Open(dir, 0);
  ASSERT_NE(backend, nullptr);
  ASSERT_EQ(::mkdir((dir + "/imported").c_str(), 0755), 0);
  FE_ASSERT_OK(test::WritePatternFile(dir + "/imported/disk.raw", 4 * test::kMiB, 3));

  Result<CloneReport> report = backend->Clone("imported", "fork");
  FE_ASSERT_OK(report);
  EXPECT_EQ(report->mechanism, "reflink");
  EXPECT_NE(report->note.find("not a subvolume"), std::string::npos) << report->note;
  Result<bool> subvolume = backend->IsSubvolume("fork");
  FE_ASSERT_OK(subvolume);
  EXPECT_TRUE(*subvolume);
  Result<test::Digest> source = test::ContentDigest(dir + "/imported/disk.raw");
  Result<test::Digest> clone = test::ContentDigest(dir + "/fork/disk.raw");
  FE_ASSERT_OK(source);
  FE_ASSERT_OK(clone);
  EXPECT_EQ(*source, *clone);
}

TEST_F(BtrfsBackendTest, ReadOnlySnapshotRefusesWritesAndCanStillBeRemoved) {
  FE_SCRATCH_DIR(dir, ScratchFs::kBtrfs);
  auto backend = Open(dir, 0);
  ASSERT_NE(backend, nullptr);
  MakeVolume(*backend, "template", 2);
  Result<CloneReport> report = backend->CloneReadOnly("template", "frozen");
  FE_ASSERT_OK(report);
  EXPECT_EQ(report->mechanism, "btrfs-snapshot-ro");
  int fd = ::open((backend->Path("frozen") + "/new").c_str(), O_CREAT | O_WRONLY, 0644);
  EXPECT_LT(fd, 0);
  EXPECT_EQ(errno, EROFS);
  if (fd >= 0) ::close(fd);

  FE_ASSERT_OK(backend->Remove("frozen"));
  EXPECT_FALSE(Exists(backend->Path("frozen")));
  EXPECT_TRUE(Exists(backend->Path("template") + "/disk.raw"));
}

TEST_F(BtrfsBackendTest, RemoveDeletesNestedReadOnlySubvolumes) {
  FE_SCRATCH_DIR(dir, ScratchFs::kBtrfs);
  auto backend = Open(dir, 0);
  ASSERT_NE(backend, nullptr);
  MakeVolume(*backend, "vm", 1);
  ASSERT_EQ(btrfs_util_create_subvolume((backend->Path("vm") + "/nested").c_str(), 0, nullptr, nullptr), BTRFS_UTIL_OK);
  FE_ASSERT_OK(test::WriteFile(backend->Path("vm") + "/nested/data", "nested"));
  ASSERT_EQ(btrfs_util_set_subvolume_read_only((backend->Path("vm") + "/nested").c_str(), true), BTRFS_UTIL_OK);

  FE_ASSERT_OK(backend->Remove("vm"));
  EXPECT_FALSE(Exists(backend->Path("vm")));
  Result<std::vector<std::string>> left = test::ListDir(dir);
  FE_ASSERT_OK(left);
  EXPECT_TRUE(left->empty()) << "left behind: " << (left->empty() ? "" : left->front());
}

TEST_F(BtrfsBackendTest, CloneOntoAnExistingVolumeFailsAndChangesNothing) {
  FE_SCRATCH_DIR(dir, ScratchFs::kBtrfs);
  auto backend = Open(dir, 0);
  ASSERT_NE(backend, nullptr);
  MakeVolume(*backend, "a", 1);
  MakeVolume(*backend, "b", 2);
  Result<test::TreeSnapshot> before = test::SnapshotTree(backend->Path("b"));
  FE_ASSERT_OK(before);
  Result<CloneReport> report = backend->Clone("a", "b");
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(report.status().message().find(backend->Path("b")), std::string::npos);
  Result<test::TreeSnapshot> after = test::SnapshotTree(backend->Path("b"));
  FE_ASSERT_OK(after);
  EXPECT_EQ(test::DiffSnapshots(*before, *after), "");
}

TEST_F(BtrfsBackendTest, CloneOfAMissingVolumeIsNotFound) {
  FE_SCRATCH_DIR(dir, ScratchFs::kBtrfs);
  auto backend = Open(dir, 0);
  ASSERT_NE(backend, nullptr);
  Result<CloneReport> report = backend->Clone("missing", "fork");
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(Exists(backend->Path("fork")));
}

TEST_F(BtrfsBackendTest, OpeningOnANonBtrfsRootIsUnsupported) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  Result<std::unique_ptr<BtrfsBackend>> backend = BtrfsBackend::Open(dir, "test", 0);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(backend.status().message().find(dir), std::string::npos);
}

}  // namespace
}  // namespace fe::storage::btrfs
