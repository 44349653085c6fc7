// The Backend contract (storage/backend.h), proven once for every registered backend: each is
// opened through the registry as the engine opens it, on the filesystem it serves (reflink on XFS,
// copy on ext4, btrfs on btrfs, dm-thin on a loop-backed thin pool — in the QEMU guest of
// dm_thin_guest_test where this kernel has no device-mapper).
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <optional>
#include <ostream>
#include <set>

#include <gtest/gtest.h>

#include "storage/backend.h"
#include "storage/dm_thin/dm_thin_backend.h"
#include "storage/dm_thin/dm_thin_device.h"
#include "storage/registry/backend_registry.h"
#include "storage/registry/backend_selection.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"
#include "tests/support/temp_dir.h"

namespace fe::storage::registry {
namespace {

using test::kMiB;
using test::ScratchFs;

struct BackendUnderTest {
  std::string name;  // the registry's name
  ScratchFs fs;      // where it runs (dm-thin: its loop-backed pool lives in a temporary directory)
};

const BackendUnderTest kBackends[] = {
    {"reflink", ScratchFs::kXfs},
    {"copy", ScratchFs::kExt4},
    {"btrfs", ScratchFs::kBtrfs},
    {"dm-thin", ScratchFs::kExt4},
};

void PrintTo(const BackendUnderTest& backend, std::ostream* os) { *os << backend.name; }

std::string ParamName(const ::testing::TestParamInfo<BackendUnderTest>& info) {
  std::string name = info.param.name;
  for (char& c : name) c = c == '-' ? '_' : c;
  return name;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

class BackendConformanceTest : public test::ScratchTest, public ::testing::WithParamInterface<BackendUnderTest> {
 protected:
  void SetUp() override {
    if (GetParam().name == "dm-thin") {
      OpenDmThin();
      return;
    }
    test::ScratchResult dir = test::Scratch::Dir(GetParam().fs);
    if (!dir.skip.empty()) GTEST_SKIP() << dir.skip;
    ASSERT_TRUE(dir.status.ok()) << dir.status.ToString();
    Result<std::unique_ptr<Backend>> backend = OpenBackend(dir.path + "/root", GetParam().name);
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    backend_ = std::move(*backend);
    ASSERT_EQ(backend_->Name(), GetParam().name);
  }

  void TearDown() override {
    if (auto* thin = dynamic_cast<dm_thin::DmThinBackend*>(backend_.get())) {
      Status deactivated = thin->Deactivate();
      EXPECT_TRUE(deactivated.ok()) << deactivated.ToString();
    }
    backend_.reset();
  }

  // A small loop-backed pool of its own, opened through the registry with the pool configured.
  void OpenDmThin() {
    std::string why;
    if (!dm_thin::DeviceMapperAvailable(&why) || ::access("/dev/loop-control", W_OK) != 0) {
      if (std::getenv("FE_REQUIRE_DM") != nullptr) FAIL() << "FE_REQUIRE_DM is set, but " << why;
      GTEST_SKIP() << "no device-mapper here (" << why << "); dm_thin_guest_test runs this in a QEMU guest";
    }
    Result<test::TempDir> dir = test::TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
    static std::atomic<int> counter{0};
    dm_thin::DmThinConfig thin;
    thin.pool_name = "fe-conformance-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    thin.data_size_bytes = 128 * kMiB;
    thin.metadata_size_bytes = 64 * kMiB;
    thin.volume_size_bytes = 32 * kMiB;
    StorageConfig config;
    config.root = dir_->Sub("root");
    config.backend = "dm-thin";
    config.thin_pool = thin;
    Result<std::unique_ptr<Backend>> backend = OpenBackend(config);
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    backend_ = std::move(*backend);
  }

  std::vector<std::string> List() {
    Result<std::vector<std::string>> volumes = backend_->List();
    EXPECT_TRUE(volumes.ok()) << volumes.status().ToString();
    return volumes.ok() ? *volumes : std::vector<std::string>{};
  }

  // A volume holding a guest-directory-like tree under "tree": a disk with data, a sparse memory
  // file, a subdirectory, a small config and a symlink. (No xattrs: not every volume filesystem has
  // user xattrs; the tree cloner's own tests cover them.)
  void MakeVolumeWithTree(const std::string& volume, uint64_t seed = 1) {
    ASSERT_TRUE(backend_->Create(volume).ok());
    const std::string tree = backend_->Path(volume) + "/tree";
    ASSERT_EQ(::mkdir(tree.c_str(), 0755), 0) << tree;
    ASSERT_EQ(::mkdir((tree + "/snapshot").c_str(), 0700), 0);
    ASSERT_TRUE(test::WritePatternFile(tree + "/disk.raw", kMiB + 4096, seed).ok());
    ASSERT_TRUE(
        test::MakeSparseFile(tree + "/snapshot/memory", 8 * kMiB, {{0, 64 * 1024}, {4 * kMiB, 128 * 1024}}, seed + 1)
            .ok());
    ASSERT_TRUE(test::WriteFile(tree + "/snapshot/config.json", "{\"seed\": " + std::to_string(seed) + "}\n").ok());
    ASSERT_EQ(::symlink("snapshot/config.json", (tree + "/config.json").c_str()), 0);
  }

  test::TreeSnapshot Snapshot(const std::string& path) {
    Result<test::TreeSnapshot> snapshot = test::SnapshotTree(path);
    EXPECT_TRUE(snapshot.ok()) << snapshot.status().ToString();
    return snapshot.ok() ? *snapshot : test::TreeSnapshot{};
  }

  std::optional<test::TempDir> dir_;
  std::unique_ptr<Backend> backend_;
};

TEST_P(BackendConformanceTest, CreateMakesOneListedVolumeAndRefusesItsNameTwice) {
  ASSERT_TRUE(backend_->Create("a").ok());
  struct stat st;
  ASSERT_EQ(::stat(backend_->Path("a").c_str(), &st), 0) << backend_->Path("a");
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(List(), std::vector<std::string>{"a"});
  Status again = backend_->Create("a");
  EXPECT_EQ(again.code(), ErrorCode::kAlreadyExists) << again.ToString();
  EXPECT_NE(again.message().find("a"), std::string::npos) << again.ToString();
}

TEST_P(BackendConformanceTest, CloneHoldsWhatItsParentHeld) {
  MakeVolumeWithTree("parent");
  test::TreeSnapshot before = Snapshot(backend_->Path("parent") + "/tree");
  Result<CloneReport> report = backend_->Clone("parent", "child");
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(test::DiffSnapshots(before, Snapshot(backend_->Path("child") + "/tree")), "");
  EXPECT_EQ(test::DiffSnapshots(before, Snapshot(backend_->Path("parent") + "/tree")), "") << "the parent changed";
}

TEST_P(BackendConformanceTest, WritesNeverCrossBetweenACloneAndItsParent) {
  ASSERT_TRUE(backend_->Create("parent").ok());
  const std::string parent_disk = backend_->Path("parent") + "/disk.raw";
  ASSERT_TRUE(test::WritePatternFile(parent_disk, 2 * kMiB, 7).ok());
  ASSERT_TRUE(backend_->Clone("parent", "child").ok());
  const std::string child_disk = backend_->Path("child") + "/disk.raw";
  Result<test::Digest> original = test::ContentDigest(parent_disk);
  ASSERT_TRUE(original.ok());

  ASSERT_TRUE(test::OverwriteRange(child_disk, kMiB, 4096, 8).ok());
  Result<test::Digest> parent_after = test::ContentDigest(parent_disk);
  ASSERT_TRUE(parent_after.ok());
  EXPECT_EQ(test::ToString(*parent_after), test::ToString(*original)) << "a write to the clone reached its parent";

  Result<test::Digest> child_before = test::ContentDigest(child_disk);
  ASSERT_TRUE(test::OverwriteRange(parent_disk, 0, 4096, 9).ok());
  Result<test::Digest> child_after = test::ContentDigest(child_disk);
  ASSERT_TRUE(child_before.ok() && child_after.ok());
  EXPECT_EQ(test::ToString(*child_after), test::ToString(*child_before)) << "a write to the parent reached its clone";
}

TEST_P(BackendConformanceTest, RemovingAParentKeepsItsClonesWhole) {
  MakeVolumeWithTree("parent");
  test::TreeSnapshot tree = Snapshot(backend_->Path("parent") + "/tree");
  ASSERT_TRUE(backend_->Clone("parent", "child").ok());
  ASSERT_TRUE(backend_->Clone("child", "grandchild").ok());
  ASSERT_TRUE(backend_->Remove("parent").ok());
  ASSERT_TRUE(backend_->Remove("child").ok());
  EXPECT_EQ(test::DiffSnapshots(tree, Snapshot(backend_->Path("grandchild") + "/tree")), "");
  EXPECT_EQ(List(), std::vector<std::string>{"grandchild"});
}

TEST_P(BackendConformanceTest, RemovedVolumeIsGoneAndItsNameFreeAgain) {
  MakeVolumeWithTree("a");
  ASSERT_TRUE(backend_->Remove("a").ok());
  EXPECT_FALSE(Exists(backend_->Path("a")));
  EXPECT_EQ(List(), std::vector<std::string>{});
  EXPECT_EQ(backend_->Remove("a").code(), ErrorCode::kNotFound);
  EXPECT_TRUE(backend_->Create("a").ok()) << "the name of a removed volume is free";
}

TEST_P(BackendConformanceTest, FailedClonesLeaveNothingAndChangeNothing) {
  MakeVolumeWithTree("a");
  MakeVolumeWithTree("b", 2);
  test::TreeSnapshot a = Snapshot(backend_->Path("a"));
  test::TreeSnapshot b = Snapshot(backend_->Path("b"));

  Result<CloneReport> missing = backend_->Clone("nope", "c");
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos) << missing.status().ToString();
  EXPECT_FALSE(Exists(backend_->Path("c")));

  Result<CloneReport> taken = backend_->Clone("a", "b");
  EXPECT_EQ(taken.status().code(), ErrorCode::kAlreadyExists) << taken.status().ToString();
  EXPECT_EQ(test::DiffSnapshots(b, Snapshot(backend_->Path("b"))), "") << "the existing target changed";
  EXPECT_EQ(test::DiffSnapshots(a, Snapshot(backend_->Path("a"))), "") << "the parent changed";

  EXPECT_EQ(List(), (std::vector<std::string>{"a", "b"}));
  Result<std::vector<std::string>> leftovers = backend_->RemoveLeftovers();
  ASSERT_TRUE(leftovers.ok()) << leftovers.status().ToString();
  EXPECT_EQ(*leftovers, std::vector<std::string>{}) << "a failed clone left something behind";
}

TEST_P(BackendConformanceTest, BadVolumeNamesAreRefusedByName) {
  for (const std::string& name :
       {std::string("../escape"), std::string("a/b"), std::string(".hidden"), std::string(""), std::string(200, 'x')}) {
    Status created = backend_->Create(name);
    EXPECT_EQ(created.code(), ErrorCode::kInvalidArgument) << "'" << name << "': " << created.ToString();
  }
  ASSERT_TRUE(backend_->Create("a").ok());
  EXPECT_EQ(backend_->Clone("a", "../escape").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(backend_->Clone("../a", "b").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(List(), std::vector<std::string>{"a"});
}

TEST_P(BackendConformanceTest, ListIsSortedAndHoldsOnlyVolumes) {
  for (const char* name : {"c", "a", "b"}) ASSERT_TRUE(backend_->Create(name).ok());
  EXPECT_EQ(List(), (std::vector<std::string>{"a", "b", "c"}));
}

TEST_P(BackendConformanceTest, UsageCountsWhatAVolumeHolds) {
  ASSERT_TRUE(backend_->Create("a").ok());
  ASSERT_TRUE(test::WritePatternFile(backend_->Path("a") + "/disk.raw", 3 * kMiB, 1).ok());
  Result<VolumeUsage> usage = backend_->Usage("a");
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  EXPECT_GE(usage->logical_bytes, 3 * kMiB);
  EXPECT_GE(usage->allocated_bytes, 3 * kMiB);
  EXPECT_EQ(backend_->Usage("nope").status().code(), ErrorCode::kNotFound);
}

TEST_P(BackendConformanceTest, RemoveLeftoversClearsWhatACrashLeftAndKeepsVolumes) {
  MakeVolumeWithTree("a");
  // What a crash mid-clone and mid-removal leave: hidden trees under the data root.
  const std::string clone_leftover = ".b.forkengine-tmp-99999-1";
  const std::string remove_leftover = ".c.forkengine-removing-99999-2";
  for (const std::string& name : {clone_leftover, remove_leftover}) {
    ASSERT_EQ(::mkdir((backend_->Root() + "/" + name).c_str(), 0700), 0) << name;
    ASSERT_TRUE(test::WriteFile(backend_->Root() + "/" + name + "/disk.raw", "half").ok());
  }
  test::TreeSnapshot a = Snapshot(backend_->Path("a"));
  Result<std::vector<std::string>> removed = backend_->RemoveLeftovers();
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(*removed, (std::vector<std::string>{clone_leftover, remove_leftover}));
  EXPECT_FALSE(Exists(backend_->Root() + "/" + clone_leftover));
  EXPECT_FALSE(Exists(backend_->Root() + "/" + remove_leftover));
  EXPECT_EQ(List(), std::vector<std::string>{"a"});
  EXPECT_EQ(test::DiffSnapshots(a, Snapshot(backend_->Path("a"))), "");
}

TEST_P(BackendConformanceTest, ImportClonesAnOutsideDirectoryAndNeverWritesIt) {
  const std::string outside = backend_->Root().substr(0, backend_->Root().rfind('/')) + "/import-source";
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0) << outside;
  ASSERT_TRUE(test::WritePatternFile(outside + "/disk.raw", kMiB, 3).ok());
  ASSERT_EQ(::mkdir((outside + "/snapshot").c_str(), 0700), 0);
  ASSERT_TRUE(test::WriteFile(outside + "/snapshot/config.json", "{}\n").ok());
  test::TreeSnapshot before = Snapshot(outside);

  Result<CloneReport> imported = backend_->Import(outside, "a");
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  test::TreeSnapshot volume = Snapshot(backend_->Path("a"));
  volume.erase("lost+found");  // a dm-thin volume is a filesystem of its own
  EXPECT_EQ(test::DiffSnapshots(before, volume, {.ctime = false, .root_times = false}), "");
  ASSERT_TRUE(test::OverwriteRange(backend_->Path("a") + "/disk.raw", 0, 4096, 4).ok());
  EXPECT_EQ(test::DiffSnapshots(before, Snapshot(outside), {.ctime = true, .root_times = true}), "")
      << "the imported directory changed";
  EXPECT_EQ(List(), std::vector<std::string>{"a"});

  EXPECT_EQ(backend_->Import(outside, "a").status().code(), ErrorCode::kAlreadyExists);
  Result<CloneReport> missing = backend_->Import(outside + "-missing", "b");
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("import-source-missing"), std::string::npos) << missing.status().ToString();
  EXPECT_EQ(List(), std::vector<std::string>{"a"}) << "a failed import left a volume";
}

INSTANTIATE_TEST_SUITE_P(EveryBackend, BackendConformanceTest, ::testing::ValuesIn(kBackends), ParamName);

TEST(BackendConformanceCoverageTest, EveryRegisteredBackendIsUnderTheSuite) {
  std::set<std::string> tested;
  for (const BackendUnderTest& backend : kBackends) tested.insert(backend.name);
  for (const BackendEntry& entry : RegisteredBackends()) {
    EXPECT_TRUE(tested.count(std::string(entry.name)))
        << "backend '" << entry.name << "' is registered but not in kBackends";
  }
}

}  // namespace
}  // namespace fe::storage::registry
