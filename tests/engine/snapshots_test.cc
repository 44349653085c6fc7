// Snapshots in the engine (engine/snapshots.cc, issue #23), on reflink XFS with the test plugin:
// a snapshot is a record instance lookups do not find, keeps its instance's identity and leases
// nothing, outlives its instance and forks with identities of their own; an instance rolls back to
// its own snapshot only, keeping its identity, and a failed roll back changes nothing; a failed
// snapshot leaves nothing; names are unique per instance; all of it survives a restart.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>

#include "engine/engine.h"
#include "tests/engine/engine_fixture.h"

namespace fe::engine {
namespace {

using fe::test::BackendCall;
using fe::test::ScratchFs;
using test::EngineFixture;

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

SnapshotRequest Named(std::string name, Labels labels = {}) {
  SnapshotRequest request;
  request.name = std::move(name);
  request.labels = std::move(labels);
  return request;
}

class SnapshotsTest : public fe::test::ScratchTest {
 protected:
  void SetUp() override {
    FE_SCRATCH_DIR(scratch, ScratchFs::kXfs);
    fixture_.backend_faults = faults_;
    FE_ASSERT_OK(fixture_.Init(scratch));
    Result<Instance> source = fixture_.ImportTemplate("src");
    FE_ASSERT_OK(source);
    ASSERT_EQ(source->state, InstanceState::kStandby);
    source_ = *source;
  }
  // The stand-in hypervisor processes outlive the engine, as VMs do: stopped here.
  void TearDown() override {
    for (const Instance& instance : engine().List()) {
      if (instance.state == InstanceState::kRunning) {
        EXPECT_TRUE(engine().Stop(instance.id).ok()) << instance.name;
      }
    }
  }
  Engine& engine() { return fixture_.engine(); }
  std::string GuestDir(const Instance& instance) { return engine().backend().Path(instance.volume); }
  Instance Take(const std::string& instance, const std::string& name) {
    Result<ForkOutcome> taken = engine().TakeSnapshot(instance, Named(name));
    EXPECT_TRUE(taken.ok()) << taken.status().ToString();
    return taken.ok() ? taken->instance : Instance{};
  }
  // The volumes on disk: the backend root's directories (its temporary trees are hidden).
  std::vector<std::string> Volumes() {
    std::vector<std::string> volumes;
    for (const auto& entry : std::filesystem::directory_iterator(engine().backend().Root())) {
      const std::string name = entry.path().filename().string();
      if (entry.is_directory() && name.front() != '.') volumes.push_back(name);
    }
    std::sort(volumes.begin(), volumes.end());
    return volumes;
  }

  std::shared_ptr<fe::test::BackendFaults> faults_ = std::make_shared<fe::test::BackendFaults>();
  EngineFixture fixture_;
  Instance source_;
};

TEST_F(SnapshotsTest, ASnapshotIsARecordOfItsOwnThatKeepsItsInstancesIdentityAndIsNoInstance) {
  Result<ForkOutcome> taken = engine().TakeSnapshot("src", Named("good", {{"stage", "1"}}));
  FE_ASSERT_OK(taken);
  const Instance& snapshot = taken->instance;
  EXPECT_EQ(snapshot.id.rfind("s-", 0), 0u) << snapshot.id;
  ASSERT_TRUE(snapshot.snapshot_mark.has_value());
  EXPECT_EQ(*snapshot.snapshot_mark, (SnapshotMark{"good", source_.id, "src", InstanceState::kStandby}));
  EXPECT_EQ(snapshot.state, InstanceState::kStandby);
  EXPECT_EQ(snapshot.identity.mac, source_.identity.mac) << "the identity it was taken with";
  EXPECT_EQ(snapshot.identity.ipv4, source_.identity.ipv4);
  EXPECT_EQ(snapshot.parent_id, source_.id);
  ASSERT_EQ(snapshot.ancestors.size(), 1u);
  EXPECT_EQ(snapshot.ancestors[0].id, source_.id);
  EXPECT_EQ(snapshot.labels.at("stage"), "1");
  EXPECT_EQ(taken->mechanism, "reflink");
  EXPECT_TRUE(Exists(GuestDir(snapshot) + "/snapshot/memory-ranges"));

  // Instance routes do not see it; snapshot lookups do.
  EXPECT_EQ(engine().Get(snapshot.id).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(engine().Start(snapshot.id).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(engine().Delete(snapshot.id).code(), ErrorCode::kNotFound);
  EXPECT_EQ(engine().List().size(), 1u);
  EXPECT_EQ(engine().Count(), 1u) << "the count (GET /v1/healthz) leaves snapshots out too";
  EXPECT_EQ(engine().GetSnapshot(source_.id).status().code(), ErrorCode::kNotFound);
  FE_ASSERT_OK(engine().GetSnapshot(snapshot.id));

  // Names are per instance.
  EXPECT_EQ(engine().TakeSnapshot("src", Named("good")).status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(engine().TakeSnapshot("src", Named("Not A Label")).status().code(), ErrorCode::kInvalidArgument);
  const Instance second = Take("src", "later");
  InstanceQuery of_src;
  of_src.snapshots = true;
  of_src.parent = source_.id;
  InstancePage page = engine().List(of_src);
  ASSERT_EQ(page.instances.size(), 2u);
  EXPECT_EQ(page.instances[0].id, snapshot.id);
  EXPECT_EQ(page.instances[1].id, second.id);

  FE_ASSERT_OK(fixture_.Reopen());
  Result<Instance> reread = engine().GetSnapshot(snapshot.id);
  FE_ASSERT_OK(reread);
  EXPECT_EQ(InstanceToJson(*reread), InstanceToJson(snapshot));
  EXPECT_EQ(engine().List().size(), 1u);
}

TEST_F(SnapshotsTest, ASnapshotOutlivesItsInstanceAndItsForksGetIdentitiesOfTheirOwn) {
  const Instance snapshot = Take("src", "good");
  FE_ASSERT_OK(engine().Delete("src"));
  ForkRequest request;
  request.name = "try";
  request.count = 2;
  request.target_state = InstanceState::kRunning;
  Result<std::vector<ForkOutcome>> forks = engine().ForkSnapshot(snapshot.id, request);
  FE_ASSERT_OK(forks);
  ASSERT_EQ(forks->size(), 2u);
  std::set<std::string> macs{source_.identity.mac};
  for (const ForkOutcome& fork : *forks) {
    EXPECT_EQ(fork.instance.state, InstanceState::kRunning);
    EXPECT_EQ(fork.instance.parent_id, snapshot.id);
    EXPECT_FALSE(fork.instance.snapshot_mark.has_value());
    EXPECT_TRUE(macs.insert(fork.instance.identity.mac).second) << "a fork has an identity of its own";
    ASSERT_EQ(fork.instance.ancestors.size(), 2u);
    EXPECT_EQ(fork.instance.ancestors[0].id, source_.id) << "the deleted instance stays in the chain";
    EXPECT_FALSE(fork.instance.ancestors[0].snapshot);
    EXPECT_EQ(fork.instance.ancestors[1].id, snapshot.id);
    EXPECT_TRUE(fork.instance.ancestors[1].snapshot);
    EXPECT_EQ(fork.instance.ancestors[1].name, "good") << "the snapshot's own name, not its record's";
  }
  request.from_running = true;
  EXPECT_EQ(engine().ForkSnapshot(snapshot.id, request).status().code(), ErrorCode::kInvalidArgument);
  ForkRequest of_an_instance;
  of_an_instance.name = "x";
  EXPECT_EQ(engine().ForkSnapshot(source_.id, of_an_instance).status().code(), ErrorCode::kNotFound);
  FE_ASSERT_OK(engine().DeleteSnapshot(snapshot.id));
  EXPECT_EQ(engine().GetSnapshot(snapshot.id).status().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(Exists(GuestDir(snapshot)));
}

TEST_F(SnapshotsTest, RollingBackReplacesTheInstancesDataWithTheSnapshotsAndKeepsItsIdentity) {
  const Instance snapshot = Take("src", "clean");
  FE_ASSERT_OK(engine().Restore("src"));
  // What the guest did since: a file the snapshot does not have.
  FE_ASSERT_OK(fe::test::WriteFile(GuestDir(source_) + "/since.txt", "changed"));
  Result<Instance> rolled = engine().RollBack("src", snapshot.id);
  FE_ASSERT_OK(rolled);
  EXPECT_EQ(rolled->state, InstanceState::kStandby) << "the state the snapshot was taken in";
  EXPECT_NE(rolled->volume, source_.volume);
  EXPECT_EQ(rolled->identity.mac, source_.identity.mac);
  EXPECT_EQ(rolled->identity.ipv4, source_.identity.ipv4);
  EXPECT_FALSE(Exists(GuestDir(*rolled) + "/since.txt"));
  EXPECT_TRUE(Exists(GuestDir(*rolled) + "/snapshot/memory-ranges"));
  EXPECT_FALSE(Exists(GuestDir(source_))) << "the old volume is removed";
  Result<std::string> config = fe::test::ReadFile(GuestDir(*rolled) + "/config.json");
  FE_ASSERT_OK(config);
  EXPECT_NE(config->find(GuestDir(*rolled)), std::string::npos) << "its configs point into its new volume";
  EXPECT_EQ(config->find(GuestDir(snapshot)), std::string::npos) << *config;
  FE_ASSERT_OK(engine().Restore("src"));

  // Only its own snapshots; a failed rewrite changes nothing.
  Result<Instance> other = fixture_.ImportTemplate("other");
  FE_ASSERT_OK(other);
  EXPECT_EQ(engine().RollBack("other", snapshot.id).status().code(), ErrorCode::kFailedPrecondition);
  const std::vector<std::string> volumes_before = Volumes();
  fixture_.plugin().fail_every_prepare = true;
  Result<Instance> failed = engine().RollBack("src", snapshot.id);
  fixture_.plugin().fail_every_prepare = false;
  EXPECT_EQ(failed.status().code(), ErrorCode::kIo) << failed.status().ToString();
  Result<Instance> after = engine().Get("src");
  FE_ASSERT_OK(after);
  EXPECT_EQ(after->volume, rolled->volume);
  EXPECT_EQ(Volumes(), volumes_before) << "the new clone was removed";

  FE_ASSERT_OK(fixture_.Reopen());
  Result<Instance> reread = engine().Get("src");
  FE_ASSERT_OK(reread);
  EXPECT_EQ(reread->volume, rolled->volume);
  EXPECT_TRUE(Exists(GuestDir(*reread) + "/config.json")) << "recovery keeps a rolled volume";
}

TEST_F(SnapshotsTest, ASnapshotOfARunningInstanceRollsItBackToRunning) {
  FE_ASSERT_OK(engine().Restore("src"));
  const Instance snapshot = Take("src", "live");
  EXPECT_EQ(snapshot.snapshot_mark->taken_in, InstanceState::kRunning);
  EXPECT_EQ(snapshot.state, InstanceState::kStandby);
  Result<Instance> source = engine().Get("src");
  FE_ASSERT_OK(source);
  EXPECT_EQ(source->state, InstanceState::kRunning) << "the instance runs on after its snapshot";
  FE_ASSERT_OK(engine().Stop("src"));
  Result<Instance> rolled = engine().RollBack("src", snapshot.id);
  FE_ASSERT_OK(rolled);
  EXPECT_EQ(rolled->state, InstanceState::kRunning);
}

TEST_F(SnapshotsTest, AFailedSnapshotLeavesNothingAndFreesItsName) {
  const std::vector<std::string> volumes_before = Volumes();
  faults_->FailNth(BackendCall::kClone, 1, Status::NoSpace("injected: the pool is full"));
  Result<ForkOutcome> failed = engine().TakeSnapshot("src", Named("full"));
  EXPECT_EQ(failed.status().code(), ErrorCode::kNoSpace) << failed.status().ToString();
  EXPECT_EQ(Volumes(), volumes_before);
  InstanceQuery snapshots;
  snapshots.snapshots = true;
  EXPECT_TRUE(engine().List(snapshots).instances.empty());
  FE_ASSERT_OK(engine().TakeSnapshot("src", Named("full")));
}

TEST_F(SnapshotsTest, AtStartAnOrphanRolledVolumeIsRemovedAndAnInstancesIsKept) {
  const Instance snapshot = Take("src", "clean");
  Result<Instance> rolled = engine().RollBack("src", snapshot.id);
  FE_ASSERT_OK(rolled);
  // What a crash between a roll back's clone and its commit leaves: a clone no instance names.
  const std::string orphan = engine().backend().Root() + "/" + source_.id + "-r0badc0de";
  ASSERT_EQ(::mkdir(orphan.c_str(), 0700), 0);
  FE_ASSERT_OK(fixture_.Reopen());
  EXPECT_FALSE(Exists(orphan));
  EXPECT_TRUE(Exists(GuestDir(*rolled) + "/config.json"));
  FE_ASSERT_OK(engine().GetSnapshot(snapshot.id));
}

// Snapshots on each backend this kernel has share their blocks with their instance (dm-thin: in the
// guest runner's dm-thin tests).
class SnapshotSharingTest : public fe::test::ScratchTest, public ::testing::WithParamInterface<ScratchFs> {};

TEST_P(SnapshotSharingTest, ASnapshotSharesItsBlocksWithItsInstanceAndItsForksWithIt) {
  FE_SCRATCH_DIR(scratch, GetParam());
  EngineFixture fixture;
  FE_ASSERT_OK(fixture.Init(scratch));
  FE_ASSERT_OK(fixture.ImportTemplate("src"));
  Result<ForkOutcome> taken = fixture.engine().TakeSnapshot("src", Named("shared"));
  FE_ASSERT_OK(taken);
  Result<storage::VolumeUsage> usage = fixture.engine().SnapshotUsage(taken->instance.id);
  FE_ASSERT_OK(usage);
  ASSERT_TRUE(usage->shared_bytes.has_value()) << usage->method;
  // The fixture's guest has 4 MiB of disk data, a 4 MiB memory file and more: all of it shared.
  EXPECT_GE(*usage->shared_bytes, 8 * fe::test::kMiB) << usage->method;
  EXPECT_LT(usage->exclusive_bytes().value_or(UINT64_MAX), fe::test::kMiB) << usage->method;
  ForkRequest request;
  request.name = "kid";
  Result<std::vector<ForkOutcome>> forks = fixture.engine().ForkSnapshot(taken->instance.id, request);
  FE_ASSERT_OK(forks);
  Result<storage::VolumeUsage> fork_usage = fixture.engine().Usage("kid");
  FE_ASSERT_OK(fork_usage);
  EXPECT_GE(fork_usage->shared_bytes.value_or(0), 8 * fe::test::kMiB) << fork_usage->method;
}

INSTANTIATE_TEST_SUITE_P(Filesystems, SnapshotSharingTest, ::testing::Values(ScratchFs::kXfs, ScratchFs::kBtrfs),
                         [](const ::testing::TestParamInfo<ScratchFs>& info) {
                           return std::string(fe::test::ScratchFsName(info.param));
                         });

}  // namespace
}  // namespace fe::engine
