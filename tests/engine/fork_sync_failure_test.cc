// A fork whose deferred sync fails (engine/fork.cc: the one syncfs per filesystem that makes the
// intent, the clone and the rewritten configs durable before the final metadata), on real XFS and
// btrfs: the fork fails at its "metadata" step naming syncfs and the directory, and is rolled back
// whole: no instance, no metadata directory, no volume, no lease; the source is untouched and the
// name is free again. A single fork and a fan-out whose one sync fails; a fan-out whose second clone
// and an import that fail in the storage backend (a fault-injecting wrapper of the real backend,
// passed to the engine as its dependency).
//
// A real syncfs failure (a write-back error) cannot be provoked on demand without breaking the
// whole filesystem, and with it the rollback under test, so the engine is given a syncfs
// (EngineDependencies::syncfs) that still syncs but reports EIO on call N.
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/engine.h"
#include "engine/instance_store.h"
#include "engine/network/network_allocator.h"
#include "engine/vm/vm_runner.h"
#include "base/deferred_sync.h"
#include "tests/engine/engine_fixture.h"

namespace fe::engine {
namespace {

using fe::test::ScratchFs;
using test::EngineFixture;

std::atomic<int> syncfs_calls{0};
std::atomic<int> fail_syncfs_on{0};  // the call that reports EIO; 0: none

// What a filesystem with a write-back error does: syncfs writes what it can and reports EIO.
int SyncfsFailingOnCallN(int fd) {
  const int call = ++syncfs_calls;
  const int synced = ::syncfs(fd);
  if (call != fail_syncfs_on.load()) return synced;
  errno = EIO;
  return -1;
}

// Everything a fork could leave behind, to compare before and after.
struct Leftovers {
  std::vector<std::string> instance_dirs;   // <data_root>/instances, hidden entries included
  std::vector<std::string> volume_entries;  // the backend's root, hidden entries included
  std::set<std::string> lease_holders;
};

class ForkSyncFailureTest : public fe::test::ScratchTest, public ::testing::WithParamInterface<ScratchFs> {
 protected:
  void SetUp() override {
    FE_SCRATCH_DIR(scratch, GetParam());
    fixture_.backend_faults = faults_;
    fixture_.syncfs = &SyncfsFailingOnCallN;
    FE_ASSERT_OK(fixture_.Init(scratch));
    Result<Instance> source = fixture_.ImportTemplate("src");
    FE_ASSERT_OK(source);
    source_ = *source;
    syncfs_calls = 0;
    fail_syncfs_on = 0;
  }

  Engine& engine() { return fixture_.engine(); }
  std::string SourceDir() { return engine().backend().Path(source_.volume); }
  fe::test::TreeSnapshot SourceTree() {
    Result<fe::test::TreeSnapshot> tree = fe::test::SnapshotTree(SourceDir());
    EXPECT_TRUE(tree.ok()) << tree.status().ToString();
    return tree.ok() ? *tree : fe::test::TreeSnapshot{};
  }
  std::string SourceMetadata() {
    Result<std::string> text = fe::test::ReadFile(fixture_.MetadataDir(source_.id) + "/instance.json");
    return text.ok() ? *text : text.status().ToString();
  }
  std::vector<std::string> Entries(const std::string& dir) {
    Result<std::vector<std::string>> names = fe::test::ListDir(dir);
    EXPECT_TRUE(names.ok()) << names.status().ToString();
    return names.ok() ? *names : std::vector<std::string>{};
  }
  // Leases are read by a fresh allocator, with the engine closed (it holds the lease files).
  Leftovers Snapshot() {
    Leftovers leftovers;
    leftovers.instance_dirs = Entries(fixture_.DataRoot() + "/instances");
    leftovers.volume_entries = Entries(engine().backend().Root());
    fixture_.Close();
    {
      Result<std::unique_ptr<network::NetworkAllocator>> network =
          network::NetworkAllocator::Open(fixture_.NetworkDir(), DefaultNetworkPool());
      EXPECT_TRUE(network.ok()) << network.status().ToString();
      if (network.ok()) {
        for (const auto& [holder, identity] : (*network)->Leases()) leftovers.lease_holders.insert(holder);
      }
    }
    Status reopened = fixture_.Open();
    EXPECT_TRUE(reopened.ok()) << reopened.ToString();
    return leftovers;
  }
  void ExpectNothingLeftBehind(const Leftovers& before) {
    Leftovers after = Snapshot();
    EXPECT_EQ(after.instance_dirs, before.instance_dirs) << "a metadata directory of the fork is left";
    EXPECT_EQ(after.volume_entries, before.volume_entries) << "a volume or clone directory of the fork is left";
    EXPECT_EQ(after.lease_holders, before.lease_holders) << "a lease of the fork is left";
    ASSERT_EQ(engine().List().size(), 1u);
    EXPECT_EQ(engine().List().front().id, source_.id);
  }

  std::shared_ptr<fe::test::BackendFaults> faults_ = std::make_shared<fe::test::BackendFaults>();
  EngineFixture fixture_;
  Instance source_;
};

ForkRequest Request(const std::string& name, int count = 1) {
  ForkRequest request;
  request.name = name;
  request.count = count;
  return request;
}

TEST_P(ForkSyncFailureTest, ForkWhoseDeferredSyncFailsIsRolledBackAndNamesTheMetadataStep) {
  const Leftovers before = Snapshot();
  const fe::test::TreeSnapshot source_tree = SourceTree();
  const std::string source_metadata = SourceMetadata();
  fail_syncfs_on = 1;

  Result<std::vector<ForkOutcome>> forked = engine().Fork("src", Request("child"));
  ASSERT_FALSE(forked.ok());
  EXPECT_GE(syncfs_calls.load(), 1) << "the fork never reached its deferred sync";
  EXPECT_EQ(forked.status().code(), ErrorCode::kIo);
  const std::string& message = forked.status().message();
  EXPECT_NE(message.find("fork 'child' of 'src': metadata: syncfs /"), std::string::npos) << message;
  EXPECT_NE(message.find(std::strerror(EIO)), std::string::npos) << message;

  EXPECT_EQ(engine().Get("child").status().code(), ErrorCode::kNotFound);
  ExpectNothingLeftBehind(before);
  EXPECT_EQ(fe::test::DiffSnapshots(source_tree, SourceTree()), "");
  EXPECT_EQ(SourceMetadata(), source_metadata);

  // The name was released and nothing in the way remains: the same fork works once syncfs does.
  fail_syncfs_on = 0;
  Result<std::vector<ForkOutcome>> retried = engine().Fork("src", Request("child"));
  FE_ASSERT_OK(retried);
  EXPECT_EQ(retried->front().instance.name, "child");
}

TEST_P(ForkSyncFailureTest, FanOutWithOneFailedDeferredSyncRollsBackEveryFork) {
  const Leftovers before = Snapshot();
  const fe::test::TreeSnapshot source_tree = SourceTree();
  const std::string source_metadata = SourceMetadata();
  fail_syncfs_on = 2;  // a fork after the first sync: whichever fork makes it, the others are undone too

  Result<std::vector<ForkOutcome>> forked = engine().Fork("src", Request("fan", 3));
  ASSERT_FALSE(forked.ok());
  EXPECT_GE(syncfs_calls.load(), 2);
  EXPECT_EQ(forked.status().code(), ErrorCode::kIo);
  const std::string& message = forked.status().message();
  EXPECT_NE(message.find("fork of 3 (all rolled back)"), std::string::npos) << message;
  EXPECT_NE(message.find("of 'src': metadata: syncfs /"), std::string::npos) << message;

  for (const char* name : {"fan-1", "fan-2", "fan-3"}) {
    EXPECT_EQ(engine().Get(name).status().code(), ErrorCode::kNotFound) << name;
  }
  ExpectNothingLeftBehind(before);
  EXPECT_EQ(fe::test::DiffSnapshots(source_tree, SourceTree()), "");
  EXPECT_EQ(SourceMetadata(), source_metadata);
}

TEST_P(ForkSyncFailureTest, AFanOutCommitsWithOneSyncPerFilesystemPlusOneWhateverItsCount) {
  FE_ASSERT_OK(engine().Fork("src", Request("single")));
  const int single = syncfs_calls.exchange(0);
  EXPECT_GE(single, 1);
  FE_ASSERT_OK(engine().Fork("src", Request("pair", 2)));
  const int pair = syncfs_calls.exchange(0);
  FE_ASSERT_OK(engine().Fork("src", Request("fan", 12)));
  const int twelve = syncfs_calls.exchange(0);
  // A single fork commits its rename with a directory fsync; a group with one more syncfs for all.
  EXPECT_EQ(pair, single + 1);
  EXPECT_EQ(twelve, pair) << "the group's flushes do not grow with its size";
  EXPECT_EQ(engine().List().size(), 16u);
}

TEST_P(ForkSyncFailureTest, FanOutWhoseSecondCloneFailsRollsBackEveryFork) {
  const Leftovers before = Snapshot();
  const fe::test::TreeSnapshot source_tree = SourceTree();
  faults_->FailNth(fe::test::BackendCall::kClone, 2, Status::NoSpace("clone: no space left (injected)"));

  Result<std::vector<ForkOutcome>> forked = engine().Fork("src", Request("fan", 3));
  ASSERT_FALSE(forked.ok());
  EXPECT_EQ(forked.status().code(), ErrorCode::kNoSpace) << forked.status().ToString();
  const std::string& message = forked.status().message();
  EXPECT_NE(message.find("fork of 3 (all rolled back)"), std::string::npos) << message;
  EXPECT_NE(message.find("of 'src': clone: clone: no space left (injected)"), std::string::npos) << message;
  for (const char* name : {"fan-1", "fan-2", "fan-3"}) {
    EXPECT_EQ(engine().Get(name).status().code(), ErrorCode::kNotFound) << name;
  }
  ExpectNothingLeftBehind(before);
  EXPECT_EQ(fe::test::DiffSnapshots(source_tree, SourceTree()), "");
  FE_ASSERT_OK(engine().Fork("src", Request("fan", 3)));  // the names are free again
}

TEST_P(ForkSyncFailureTest, FailedImportLeavesNoInstanceVolumeOrLease) {
  const Leftovers before = Snapshot();
  faults_->FailNth(fe::test::BackendCall::kImport, 1, Status::Io("import: read error (injected)"));

  Result<Instance> created = fixture_.ImportTemplate("imported");
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), ErrorCode::kIo);
  EXPECT_NE(created.status().message().find("create 'imported': import: import: read error (injected)"),
            std::string::npos)
      << created.status().ToString();
  EXPECT_EQ(engine().Get("imported").status().code(), ErrorCode::kNotFound);
  ExpectNothingLeftBehind(before);
  FE_ASSERT_OK(fixture_.ImportTemplate("imported"));  // the name is free again
}

// A standby syncs its snapshot once before recording Standby (engine/lifecycle.cc). When that sync
// fails, the VM has exited already: the instance is recorded Stopped (a restart says so too), never
// Standby on a snapshot that may not be on disk, and the error names syncfs.
TEST_P(ForkSyncFailureTest, StandbyWhoseSnapshotCannotBeMadeDurableLeavesTheInstanceStopped) {
  CreateRequest request;
  request.name = "vm";
  request.hypervisor = "cloud-hypervisor";
  request.import_dir = fixture_.template_dir();
  request.state = InstanceState::kStopped;
  FE_ASSERT_OK(engine().Create(request));
  Result<Instance> running = engine().Start("vm");
  FE_ASSERT_OK(running);
  syncfs_calls = 0;
  fail_syncfs_on = 1;
  Result<Instance> standby = engine().Standby("vm");
  EXPECT_FALSE(standby.ok());
  EXPECT_NE(standby.status().message().find("syncfs"), std::string::npos) << standby.status().ToString();
  EXPECT_NE(standby.status().message().find("it is Stopped"), std::string::npos) << standby.status().ToString();
  EXPECT_EQ(engine().Get("vm")->state, InstanceState::kStopped);
  EXPECT_FALSE(vm::VmProcessAlive(*running->process));
  fail_syncfs_on = 0;
  FE_ASSERT_OK(fixture_.Reopen());
  EXPECT_EQ(engine().Get("vm")->state, InstanceState::kStopped);
  FE_ASSERT_OK(engine().Start("vm"));
  FE_ASSERT_OK(engine().Delete("vm"));
}

INSTANTIATE_TEST_SUITE_P(Backends, ForkSyncFailureTest, ::testing::Values(ScratchFs::kXfs, ScratchFs::kBtrfs),
                         [](const ::testing::TestParamInfo<ScratchFs>& info) {
                           return std::string(fe::test::ScratchFsName(info.param));
                         });

}  // namespace
}  // namespace fe::engine
