// The tree backends ("reflink", "copy") as the engine gets them: through OpenBackend.
#include <sys/stat.h>

#include <thread>

#include <gtest/gtest.h>

#include "storage/backend.h"
#include "storage/registry/backend_selection.h"
#include "storage/tree/tree_backend.h"
#include "tests/support/file_util.h"
#include "tests/support/sample_tree.h"
#include "tests/support/scratch.h"

namespace fe::storage::registry {
namespace {

using test::kMiB;
using test::ScratchFs;

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

test::TreeSnapshot Snapshot(const std::string& root) {
  Result<test::TreeSnapshot> snapshot = test::SnapshotTree(root);
  EXPECT_TRUE(snapshot.ok()) << snapshot.status().ToString();
  return snapshot.ok() ? *snapshot : test::TreeSnapshot{};
}

class TreeBackendTest : public test::ScratchTest {
 protected:
  static std::unique_ptr<Backend> Open(const std::string& root, std::string choice) {
    Result<std::unique_ptr<Backend>> backend = OpenBackend(root, choice);
    EXPECT_TRUE(backend.ok()) << backend.status().ToString();
    return backend.ok() ? std::move(*backend) : nullptr;
  }

  static std::vector<std::string> List(Backend& backend) {
    Result<std::vector<std::string>> volumes = backend.List();
    EXPECT_TRUE(volumes.ok()) << volumes.status().ToString();
    return volumes.ok() ? *volumes : std::vector<std::string>{};
  }
};

// ---- selection ----

TEST_F(TreeBackendTest, AutoOnXfsChoosesReflink) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  std::unique_ptr<Backend> backend = Open(dir + "/root", "auto");
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->Name(), "reflink");
  EXPECT_TRUE(backend->Capabilities().shares_data);
  EXPECT_EQ(backend->Root(), dir + "/root");
  EXPECT_FALSE(backend->SelectionReason().empty());
}

// (Auto on btrfs picks the btrfs subvolume backend, tested with it.)
TEST_F(TreeBackendTest, ForcedReflinkOnBtrfsIsReflink) {
  FE_SCRATCH_DIR(dir, ScratchFs::kBtrfs);
  std::unique_ptr<Backend> backend = Open(dir + "/root", "reflink");
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->Name(), "reflink");
  EXPECT_TRUE(backend->Capabilities().shares_data);
}

TEST_F(TreeBackendTest, AutoOnExt4ChoosesCopyAndSaysWhy) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  std::unique_ptr<Backend> backend = Open(dir + "/root", "auto");
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->Name(), "copy");
  EXPECT_FALSE(backend->Capabilities().shares_data);
  EXPECT_NE(backend->SelectionReason().find("FICLONE"), std::string::npos) << backend->SelectionReason();
}

TEST_F(TreeBackendTest, ForcedReflinkOnExt4IsUnsupportedNamingRoot) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  Result<std::unique_ptr<Backend>> backend = OpenBackend(dir + "/root", "reflink");
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), ErrorCode::kUnsupported) << backend.status().ToString();
  EXPECT_NE(backend.status().message().find(dir + "/root"), std::string::npos) << backend.status().message();
}

TEST_F(TreeBackendTest, ForcedReflinkOnXfsIsReflink) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  std::unique_ptr<Backend> backend = Open(dir + "/root", "reflink");
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->Name(), "reflink");
}

TEST_F(TreeBackendTest, ForcedCopyOnXfsCopiesWithoutFiclone) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  std::unique_ptr<Backend> backend = Open(dir + "/root", "copy");
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->Name(), "copy");
  ASSERT_TRUE(test::MakeSampleTree(backend->Path("base")).ok());
  Result<CloneReport> report = backend->Clone("base", "child");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->reflinked_bytes, 0u);
  EXPECT_EQ(report->mechanism, "copy");
}

TEST_F(TreeBackendTest, OpenCreatesAMissingRoot) {
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  ASSERT_FALSE(Exists(dir + "/new-root"));
  std::unique_ptr<Backend> backend = Open(dir + "/new-root", "auto");
  ASSERT_NE(backend, nullptr);
  EXPECT_TRUE(Exists(dir + "/new-root"));
  EXPECT_TRUE(List(*backend).empty());
}

TEST(BackendChoiceTest, ParsesNamesAndRejectsOthers) {
  for (std::string choice : {"auto", "reflink", "copy"}) {
    Result<std::string> parsed = ParseBackendChoice(choice);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(*parsed, choice);
  }
  Result<std::string> bad = ParseBackendChoice("zfs");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("zfs"), std::string::npos);
}

// ---- volume lifecycle ----

class TreeBackendFsTest : public TreeBackendTest, public ::testing::WithParamInterface<ScratchFs> {};

TEST_P(TreeBackendFsTest, CreateCloneListUsageRemove) {
  FE_SCRATCH_DIR(dir, GetParam());
  const bool reflink = GetParam() != ScratchFs::kExt4;
  // Auto would pick the btrfs backend on btrfs; this file tests the tree backends.
  std::unique_ptr<Backend> backend = Open(dir + "/root", reflink ? "reflink" : "auto");
  ASSERT_NE(backend, nullptr);
  ASSERT_EQ(backend->Name(), reflink ? "reflink" : "copy");

  FE_ASSERT_OK(backend->Create("base"));
  EXPECT_EQ(backend->Path("base"), dir + "/root/base");
  ASSERT_TRUE(Exists(backend->Path("base")));
  ASSERT_EQ(::rmdir(backend->Path("base").c_str()), 0);  // refill it with the sample tree
  Result<test::SampleTree> tree = test::MakeSampleTree(backend->Path("base"));
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  test::TreeSnapshot base = Snapshot(backend->Path("base"));

  Result<CloneReport> report = backend->Clone("base", "child");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->mechanism, reflink ? "reflink" : "copy");
  EXPECT_EQ(report->files, tree->files);
  EXPECT_EQ(test::DiffSnapshots(base, Snapshot(backend->Path("child"))), "");
  EXPECT_EQ(List(*backend), (std::vector<std::string>{"base", "child"}));

  Result<VolumeUsage> usage = backend->Usage("child");
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  // (How hard links count is UsageCountsHardLinkedFilesOnce's business.)
  EXPECT_GE(usage->logical_bytes, tree->logical_bytes);
  EXPECT_LE(usage->logical_bytes, tree->logical_bytes + 300 * test::kKiB);
  EXPECT_GE(usage->allocated_bytes, tree->data_bytes);
  EXPECT_LE(usage->allocated_bytes, tree->data_bytes + 2 * kMiB);
  ASSERT_TRUE(usage->shared_bytes.has_value());
  if (reflink) {
    EXPECT_GE(*usage->shared_bytes, 13 * kMiB);  // disk.img data + memory.bin at least
  } else {
    EXPECT_EQ(*usage->shared_bytes, 0u);
  }

  // Removing the parent never affects the clone.
  FE_ASSERT_OK(backend->Remove("base"));
  EXPECT_FALSE(Exists(backend->Path("base")));
  EXPECT_EQ(List(*backend), std::vector<std::string>{"child"});
  EXPECT_EQ(test::DiffSnapshots(base, Snapshot(backend->Path("child"))), "");

  FE_ASSERT_OK(backend->Remove("child"));
  EXPECT_TRUE(List(*backend).empty());
  Result<std::vector<std::string>> left = test::ListDir(dir + "/root");
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty()) << "left in the root: " << left->front();
}

INSTANTIATE_TEST_SUITE_P(Filesystems, TreeBackendFsTest,
                         ::testing::Values(ScratchFs::kXfs, ScratchFs::kBtrfs, ScratchFs::kExt4),
                         [](const auto& info) { return std::string(test::ScratchFsName(info.param)); });

TEST_F(TreeBackendTest, UsageOfReflinkedVolumeOnXfsReportsSharedBytes) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  std::unique_ptr<Backend> backend = Open(dir + "/root", "auto");
  ASSERT_NE(backend, nullptr);
  FE_ASSERT_OK(backend->Create("base"));
  FE_ASSERT_OK(test::WritePatternFile(backend->Path("base") + "/memory.bin", 8 * kMiB, 3));
  Result<VolumeUsage> before = backend->Usage("base");
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  ASSERT_TRUE(before->shared_bytes.has_value());
  EXPECT_EQ(*before->shared_bytes, 0u);

  ASSERT_TRUE(backend->Clone("base", "child").ok());
  for (const char* volume : {"base", "child"}) {
    Result<VolumeUsage> usage = backend->Usage(volume);
    ASSERT_TRUE(usage.ok()) << usage.status().ToString();
    ASSERT_TRUE(usage->shared_bytes.has_value());
    EXPECT_EQ(*usage->shared_bytes, 8 * kMiB) << volume;
    EXPECT_EQ(usage->logical_bytes, 8 * kMiB) << volume;
  }
}

TEST_F(TreeBackendTest, UsageCountsHardLinkedFilesOnce) {
  // Like du, and like CloneReport.logical_bytes: an inode is counted once, whatever its names.
  FE_SCRATCH_DIR(dir, ScratchFs::kExt4);
  std::unique_ptr<Backend> backend = Open(dir + "/root", "auto");
  ASSERT_NE(backend, nullptr);
  FE_ASSERT_OK(backend->Create("vm"));
  const std::string file = backend->Path("vm") + "/memory.bin";
  FE_ASSERT_OK(test::WritePatternFile(file, kMiB, 4));
  ASSERT_EQ(::link(file.c_str(), (backend->Path("vm") + "/memory.bin.link").c_str()), 0);
  Result<VolumeUsage> usage = backend->Usage("vm");
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  EXPECT_EQ(usage->logical_bytes, kMiB);
  EXPECT_LE(usage->allocated_bytes, kMiB + 64 * test::kKiB);
}

TEST_F(TreeBackendTest, ExistingAndMissingVolumesGiveClearErrors) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  std::unique_ptr<Backend> backend = Open(dir + "/root", "auto");
  ASSERT_NE(backend, nullptr);
  FE_ASSERT_OK(backend->Create("base"));
  FE_ASSERT_OK(test::WriteFile(backend->Path("base") + "/file", "base"));
  FE_ASSERT_OK(backend->Create("other"));
  FE_ASSERT_OK(test::WriteFile(backend->Path("other") + "/file", "other"));

  Status created = backend->Create("base");
  EXPECT_EQ(created.code(), ErrorCode::kAlreadyExists) << created.ToString();
  EXPECT_NE(created.message().find(backend->Path("base")), std::string::npos) << created.message();

  Result<CloneReport> onto = backend->Clone("base", "other");
  ASSERT_FALSE(onto.ok());
  EXPECT_EQ(onto.status().code(), ErrorCode::kAlreadyExists) << onto.status().ToString();
  EXPECT_NE(onto.status().message().find(backend->Path("other")), std::string::npos) << onto.status().message();
  Result<std::string> other = test::ReadFile(backend->Path("other") + "/file");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*other, "other");

  Result<CloneReport> orphan = backend->Clone("missing", "child");
  ASSERT_FALSE(orphan.ok());
  EXPECT_EQ(orphan.status().code(), ErrorCode::kNotFound) << orphan.status().ToString();
  EXPECT_NE(orphan.status().message().find("missing"), std::string::npos) << orphan.status().message();
  EXPECT_FALSE(Exists(backend->Path("child")));

  Status removed = backend->Remove("missing");
  EXPECT_EQ(removed.code(), ErrorCode::kNotFound) << removed.ToString();
  EXPECT_NE(removed.message().find(backend->Path("missing")), std::string::npos) << removed.message();

  Result<VolumeUsage> usage = backend->Usage("missing");
  ASSERT_FALSE(usage.ok());
  EXPECT_EQ(usage.status().code(), ErrorCode::kNotFound) << usage.status().ToString();

  EXPECT_EQ(List(*backend), (std::vector<std::string>{"base", "other"}));
}

TEST_F(TreeBackendTest, InvalidVolumeNamesAreRejected) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  std::unique_ptr<Backend> backend = Open(dir + "/root", "auto");
  ASSERT_NE(backend, nullptr);
  FE_ASSERT_OK(backend->Create("base"));
  const std::vector<std::string> invalid = {"../x",
                                            "a/b",
                                            "",
                                            ".",
                                            "..",
                                            ".hidden",
                                            "-dash",
                                            "_under",
                                            "a b",
                                            "x\n",
                                            std::string("a\0b", 3),
                                            std::string(129, 'a'),
                                            "/abs"};
  for (const std::string& name : invalid) {
    EXPECT_EQ(ValidateVolumeName(name).code(), ErrorCode::kInvalidArgument) << "'" << name << "'";
    EXPECT_EQ(backend->Create(name).code(), ErrorCode::kInvalidArgument) << "'" << name << "'";
    EXPECT_EQ(backend->Clone("base", name).status().code(), ErrorCode::kInvalidArgument) << name;
    EXPECT_EQ(backend->Clone(name, "new").status().code(), ErrorCode::kInvalidArgument) << name;
    EXPECT_EQ(backend->Remove(name).code(), ErrorCode::kInvalidArgument) << "'" << name << "'";
    EXPECT_EQ(backend->Usage(name).status().code(), ErrorCode::kInvalidArgument) << name;
  }
  // Nothing was created in the root or next to it.
  EXPECT_EQ(List(*backend), std::vector<std::string>{"base"});
  Result<std::vector<std::string>> beside = test::ListDir(dir);
  ASSERT_TRUE(beside.ok());
  EXPECT_EQ(*beside, std::vector<std::string>{"root"});
}

TEST(VolumeNameTest, AcceptsOneComponentNames) {
  for (const std::string& name : {std::string("a"), std::string("inst-1.2_x"), std::string("A9"),
                                  std::string("vm.snapshot"), std::string(128, 'z')}) {
    EXPECT_TRUE(ValidateVolumeName(name).ok()) << name;
  }
}

TEST_F(TreeBackendTest, ListShowsOnlyVolumes) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  std::unique_ptr<Backend> backend = Open(dir + "/root", "auto");
  ASSERT_NE(backend, nullptr);
  FE_ASSERT_OK(backend->Create("vm-b"));
  FE_ASSERT_OK(backend->Create("vm-a"));
  FE_ASSERT_OK(test::WriteFile(dir + "/root/notes.txt", "not a volume"));
  ASSERT_EQ(::mkdir((dir + "/root/.vm-c.forkengine-tmp-1-1").c_str(), 0700), 0);
  EXPECT_EQ(List(*backend), (std::vector<std::string>{"vm-a", "vm-b"}));
}

TEST_F(TreeBackendTest, RemoveLeftoversRemovesOnlyHiddenTemporaryTrees) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  std::unique_ptr<Backend> backend = Open(dir + "/root", "auto");
  ASSERT_NE(backend, nullptr);
  FE_ASSERT_OK(backend->Create("vm-a"));
  FE_ASSERT_OK(test::WriteFile(dir + "/root/vm-a/disk.img", "data"));
  ASSERT_EQ(::mkdir((dir + "/root/.vm-b.forkengine-tmp-1-1").c_str(), 0700), 0);
  FE_ASSERT_OK(test::WriteFile(dir + "/root/.vm-b.forkengine-tmp-1-1/half.img", "half"));
  ASSERT_EQ(::mkdir((dir + "/root/.vm-c.forkengine-removing-1-2").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((dir + "/root/.hidden-but-not-ours").c_str(), 0700), 0);

  Result<std::vector<std::string>> removed = backend->RemoveLeftovers();
  FE_ASSERT_OK(removed.status());
  EXPECT_EQ(*removed, (std::vector<std::string>{".vm-b.forkengine-tmp-1-1", ".vm-c.forkengine-removing-1-2"}));
  EXPECT_FALSE(Exists(dir + "/root/.vm-b.forkengine-tmp-1-1"));
  EXPECT_FALSE(Exists(dir + "/root/.vm-c.forkengine-removing-1-2"));
  EXPECT_TRUE(Exists(dir + "/root/.hidden-but-not-ours"));
  EXPECT_TRUE(Exists(dir + "/root/vm-a/disk.img"));
}

TEST_F(TreeBackendTest, ConcurrentClonesOfDifferentVolumesSucceed) {
  FE_SCRATCH_DIR(dir, ScratchFs::kXfs);
  std::unique_ptr<Backend> backend = Open(dir + "/root", "auto");
  ASSERT_NE(backend, nullptr);
  ASSERT_TRUE(test::MakeSampleTree(backend->Path("base")).ok());
  test::TreeSnapshot base = Snapshot(backend->Path("base"));

  constexpr int kClones = 4;
  std::vector<Status> results(kClones);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClones; ++i) {
    threads.emplace_back([&, i] {
      Result<CloneReport> report = backend->Clone("base", "child" + std::to_string(i));
      results[i] = report.status();
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kClones; ++i) {
    FE_EXPECT_OK(results[i]);
    EXPECT_EQ(test::DiffSnapshots(base, Snapshot(backend->Path("child" + std::to_string(i)))), "");
  }
  EXPECT_EQ(List(*backend).size(), 1u + kClones);
}

}  // namespace
}  // namespace fe::storage::registry
