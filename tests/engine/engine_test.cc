// The engine without forks: create (import and empty), get/list, delete, lifecycle state checks and
// real (stand-in) processes, persistence across reopening, recovery after a crash, storage summary.
#include "engine/engine.h"

#include <sys/stat.h>

#include <algorithm>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/instance_store.h"
#include "engine/vm/vm_runner.h"
#include "tests/engine/engine_fixture.h"

namespace fe::engine {
namespace {

using test::EngineFixture;

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool Mentions(const RecoveryReport& report, const std::string& text) {
  return std::any_of(report.actions.begin(), report.actions.end(),
                     [&](const std::string& action) { return action.find(text) != std::string::npos; });
}

CreateRequest Request(std::string name, std::string hypervisor = "cloud-hypervisor", std::string import_dir = "",
                      std::optional<InstanceState> state = std::nullopt) {
  CreateRequest request;
  request.name = std::move(name);
  request.hypervisor = std::move(hypervisor);
  request.import_dir = std::move(import_dir);
  request.state = state;
  return request;
}

class EngineTest : public fe::test::ScratchTest {
 protected:
  void SetUp() override {
    FE_SCRATCH_DIR(scratch, fe::test::ScratchFs::kXfs);
    FE_ASSERT_OK(fixture_.Init(scratch));
  }
  Engine& engine() { return fixture_.engine(); }
  EngineFixture fixture_;
};

TEST_F(EngineTest, ImportOfSnapshottedGuestIsStandbyWithPathsAndIdentityOfItsOwn) {
  Result<Instance> created = fixture_.ImportTemplate("template");
  FE_ASSERT_OK(created);
  EXPECT_EQ(created->state, InstanceState::kStandby);
  EXPECT_EQ(created->name, "template");
  EXPECT_EQ(created->volume, created->id);
  EXPECT_EQ(created->storage_backend, "reflink");
  EXPECT_TRUE(created->parent_id.empty());
  EXPECT_FALSE(created->identity.ipv4.empty());
  std::string guest = engine().backend().Path(created->volume);
  for (const char* file : {"config.json", "snapshot/config.json"}) {
    auto config = nlohmann::json::parse(*fe::test::ReadFile(guest + "/" + file));
    EXPECT_EQ(config["disks"][0]["path"], guest + "/rootfs.raw") << file;
    EXPECT_EQ(config["payload"]["kernel"], guest + "/vmlinux") << file;
    EXPECT_EQ(config["net"][0]["mac"], created->identity.mac) << file;
    EXPECT_EQ(config["net"][0]["tap"], created->identity.tap_device) << file;
  }
  EXPECT_FALSE(Exists(guest + "/logs/serial.log"));  // runtime files are not carried
  Result<Instance> by_name = engine().Get("template");
  FE_ASSERT_OK(by_name);
  EXPECT_EQ(by_name->id, created->id);
  EXPECT_EQ(engine().Get(created->id)->name, "template");
}

TEST_F(EngineTest, EmptyInstanceIsStoppedAndHasAnEmptyVolume) {
  CreateRequest request = Request("empty");
  Result<Instance> created = engine().Create(request);
  FE_ASSERT_OK(created);
  EXPECT_EQ(created->state, InstanceState::kStopped);
  Result<std::vector<std::string>> names = fe::test::ListDir(engine().backend().Path(created->volume));
  FE_ASSERT_OK(names);
  EXPECT_TRUE(names->empty());
}

TEST_F(EngineTest, CreateRefusesTakenInvalidAndUnsupported) {
  FE_ASSERT_OK(fixture_.ImportTemplate("a"));
  Result<Instance> taken = fixture_.ImportTemplate("a");
  EXPECT_EQ(taken.status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(fixture_.ImportTemplate("Not_A_Label").status().code(), ErrorCode::kInvalidArgument);
  CreateRequest vz = Request("b", "vz");
  Result<Instance> unsupported = engine().Create(vz);
  EXPECT_EQ(unsupported.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(unsupported.status().message().find("vz"), std::string::npos);
  CreateRequest missing = Request("c", "cloud-hypervisor", "/nonexistent/dir");
  EXPECT_EQ(engine().Create(missing).status().code(), ErrorCode::kNotFound);
  // Only "a" exists: the failures left no volume and no lease.
  EXPECT_EQ(engine().List().size(), 1u);
  EXPECT_EQ(fixture_.engine().Storage()->volumes, 1u);
}

TEST_F(EngineTest, FailedImportRollsBackVolumeLeaseAndMetadata) {
  fixture_.plugin().fail_prepare_on = 1;
  Result<Instance> created = fixture_.ImportTemplate("broken");
  ASSERT_FALSE(created.ok());
  EXPECT_NE(created.status().message().find("create 'broken': rewrite"), std::string::npos)
      << created.status().message();
  EXPECT_EQ(engine().Storage()->volumes, 0u);
  EXPECT_TRUE(fe::test::ListDir(fixture_.DataRoot() + "/instances")->empty());
  FE_ASSERT_OK(fixture_.Reopen());
  EXPECT_TRUE(engine().recovery().actions.empty());
  FE_EXPECT_OK(fixture_.ImportTemplate("broken"));  // the name was released
}

TEST_F(EngineTest, WrongStateOperationsAreFailedPreconditionNamingTheState) {
  Result<Instance> standby = fixture_.ImportTemplate("s");
  FE_ASSERT_OK(standby);
  Result<Instance> start = engine().Start("s");
  EXPECT_EQ(start.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(start.status().message().find("Standby"), std::string::npos) << start.status().message();
  EXPECT_EQ(engine().Stop("s").status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(engine().Standby("s").status().code(), ErrorCode::kFailedPrecondition);
  CreateRequest request = Request("t");
  FE_ASSERT_OK(engine().Create(request));
  EXPECT_EQ(engine().Restore("t").status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(engine().Start("nope").status().code(), ErrorCode::kNotFound);
}

TEST_F(EngineTest, DeleteRemovesMetadataVolumeAndLease) {
  Result<Instance> created = fixture_.ImportTemplate("gone");
  FE_ASSERT_OK(created);
  std::string guest = engine().backend().Path(created->volume);
  EXPECT_TRUE(engine().Exists("gone"));
  EXPECT_TRUE(engine().Exists(created->id));
  FE_ASSERT_OK(engine().Delete("gone"));
  EXPECT_EQ(engine().Get("gone").status().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(engine().Exists("gone"));
  EXPECT_FALSE(engine().Exists(created->id));
  EXPECT_FALSE(Exists(guest));
  EXPECT_FALSE(Exists(fixture_.MetadataDir(created->id)));
  EXPECT_EQ(engine().Delete("gone").code(), ErrorCode::kNotFound);
  FE_ASSERT_OK(fixture_.Reopen());
  EXPECT_TRUE(engine().recovery().actions.empty());
  EXPECT_TRUE(engine().List().empty());
  FE_EXPECT_OK(fixture_.ImportTemplate("gone"));  // the name is free again
}

TEST_F(EngineTest, InstancesSurviveReopeningUnchanged) {
  Result<Instance> a = fixture_.ImportTemplate("a");
  Result<Instance> b = fixture_.ImportTemplate("b");
  FE_ASSERT_OK(a);
  FE_ASSERT_OK(b);
  FE_ASSERT_OK(fixture_.Reopen());
  EXPECT_TRUE(engine().recovery().actions.empty());
  std::vector<Instance> listed = engine().List();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(InstanceToJson(listed[0]), InstanceToJson(*a));
  EXPECT_EQ(InstanceToJson(listed[1]), InstanceToJson(*b));
  EXPECT_EQ(engine().Get("b")->id, b->id);
  EXPECT_EQ(fixture_.ImportTemplate("a").status().code(), ErrorCode::kAlreadyExists);
}

TEST_F(EngineTest, RecoveryRemovesWhatACrashLeftHalfMadeAndQuarantinesWhatItCannotRead) {
  Result<Instance> kept = fixture_.ImportTemplate("kept");
  FE_ASSERT_OK(kept);
  // A fork interrupted after its clone and lease: intent metadata (Creating), volume, lease.
  Result<Instance> half = fixture_.ImportTemplate("half");
  FE_ASSERT_OK(half);
  Instance intent = *half;
  intent.state = InstanceState::kCreating;
  intent.parent_id = kept->id;
  // An instance whose metadata is damaged: quarantined, with its volume and lease kept.
  Result<Instance> damaged = fixture_.ImportTemplate("damaged");
  FE_ASSERT_OK(damaged);
  // A Running instance whose process is gone.
  Result<Instance> lost = fixture_.ImportTemplate("lost");
  FE_ASSERT_OK(lost);
  Instance running = *lost;
  running.state = InstanceState::kRunning;
  running.process = vm::ProcessRecord{999999, 1, "/tmp/none.sock"};
  std::string orphan_volume = engine().backend().Path("i-00000000000000aa");
  std::string bare_dir = fixture_.MetadataDir("i-00000000000000bb");
  std::string half_volume = engine().backend().Path(half->volume);
  // A clone cut short inside the storage backend: its hidden temporary tree.
  std::string clone_leftover = engine().backend().Root() + "/.i-00000000000000dd.forkengine-tmp-1-1";

  fixture_.Close();  // the crash; then what it left behind:
  FE_ASSERT_OK(fe::test::WriteFile(fixture_.MetadataDir(half->id) + "/instance.json", InstanceToJson(intent).dump()));
  FE_ASSERT_OK(fe::test::WriteFile(fixture_.MetadataDir(damaged->id) + "/instance.json", "{\"id\": 7"));
  FE_ASSERT_OK(fe::test::WriteFile(fixture_.MetadataDir(lost->id) + "/instance.json", InstanceToJson(running).dump()));
  ASSERT_EQ(::mkdir(orphan_volume.c_str(), 0755), 0);
  FE_ASSERT_OK(fe::test::WriteFile(orphan_volume + "/disk.raw", "data"));
  ASSERT_EQ(::mkdir(bare_dir.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(clone_leftover.c_str(), 0700), 0);
  FE_ASSERT_OK(fe::test::WriteFile(clone_leftover + "/disk.raw", "half"));
  std::string orphan_ip;
  {
    // A lease taken just before a crash, by a fork whose intent never reached the disk.
    Result<std::unique_ptr<network::NetworkAllocator>> allocator =
        network::NetworkAllocator::Open(fixture_.NetworkDir(), DefaultNetworkPool());
    FE_ASSERT_OK(allocator);
    Result<hypervisor::NetworkIdentity> leased = (*allocator)->Allocate("i-00000000000000cc");
    FE_ASSERT_OK(leased);
    orphan_ip = leased->ipv4;
  }
  FE_ASSERT_OK(fixture_.Open());

  const RecoveryReport& report = engine().recovery();
  EXPECT_TRUE(Mentions(report, "removed half-made instance " + half->id)) << ::testing::PrintToString(report.actions);
  EXPECT_TRUE(Mentions(report, "fork of " + kept->id));
  EXPECT_TRUE(Mentions(report, "removed orphan volume " + orphan_volume));
  EXPECT_TRUE(Mentions(report, "removed " + bare_dir + ": no metadata"));
  const std::string quarantined = fixture_.DataRoot() + "/quarantine/" + damaged->id;
  EXPECT_TRUE(Mentions(report, "quarantined instance " + damaged->id + " in " + quarantined));
  EXPECT_TRUE(Mentions(report, "instance " + lost->id + " ('lost') was Running but its process is gone"));
  EXPECT_TRUE(Mentions(report, "released orphan lease of i-00000000000000cc (" + orphan_ip));
  EXPECT_TRUE(Mentions(report, "removed " + clone_leftover + ": the temporary tree of an interrupted clone"));
  EXPECT_EQ(report.actions.size(), 7u) << ::testing::PrintToString(report.actions);
  EXPECT_FALSE(Exists(orphan_volume));
  EXPECT_FALSE(Exists(clone_leftover));
  EXPECT_FALSE(Exists(bare_dir));
  EXPECT_FALSE(Exists(half_volume));
  EXPECT_FALSE(Exists(fixture_.MetadataDir(half->id)));
  EXPECT_FALSE(Exists(fixture_.MetadataDir(damaged->id)));
  EXPECT_EQ(*fe::test::ReadFile(quarantined + "/instance.json"), "{\"id\": 7");
  EXPECT_NE(fe::test::ReadFile(quarantined + "/QUARANTINED")->find("instance.json"), std::string::npos);
  EXPECT_TRUE(Exists(engine().backend().Path(damaged->volume)));
  ASSERT_EQ(report.quarantined.size(), 1u);
  EXPECT_EQ(report.quarantined[0].id, damaged->id);
  EXPECT_EQ(report.quarantined[0].path, quarantined);
  EXPECT_EQ(engine().Get("half").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(engine().Get("lost")->state, InstanceState::kStopped);
  EXPECT_FALSE(engine().Get("lost")->process.has_value());
  EXPECT_EQ(engine().Get("kept")->state, InstanceState::kStandby);
  EXPECT_EQ(engine().List().size(), 2u);  // kept, lost

  // What recovery settled stays settled: a second start finds nothing to do; the quarantined
  // instance is still reported and its volume and lease are still kept.
  FE_ASSERT_OK(fixture_.Reopen());
  EXPECT_TRUE(engine().recovery().actions.empty()) << ::testing::PrintToString(engine().recovery().actions);
  ASSERT_EQ(engine().recovery().quarantined.size(), 1u);
  EXPECT_TRUE(Exists(engine().backend().Path(damaged->volume)));

  // Repaired and moved back by hand, it is an instance again.
  fixture_.Close();
  FE_ASSERT_OK(fe::test::WriteFile(quarantined + "/instance.json", InstanceToJson(*damaged).dump()));
  ASSERT_EQ(::unlink((quarantined + "/QUARANTINED").c_str()), 0);
  ASSERT_EQ(::rename(quarantined.c_str(), fixture_.MetadataDir(damaged->id).c_str()), 0);
  FE_ASSERT_OK(fixture_.Open());
  EXPECT_TRUE(engine().recovery().quarantined.empty());
  EXPECT_EQ(engine().Get("damaged")->id, damaged->id);
}

TEST_F(EngineTest, TemporaryFilesOfInterruptedWritesAreRemovedAtStartAndNothingElse) {
  Result<Instance> instance = fixture_.ImportTemplate("a");
  FE_ASSERT_OK(instance);
  const std::string volume = engine().backend().Path(instance->volume);
  fixture_.Close();
  const std::vector<std::string> leftovers = {
      fixture_.DataRoot() + "/x.tmp-abc123",
      fixture_.MetadataDir(instance->id) + "/instance.json.tmp-Qw3rTy",
      fixture_.NetworkDir() + "/network.json.tmp-zzzzzz",
      volume + "/config.json.tmp-a1b2c3",
      volume + "/snapshot/state.json.tmp-XXXXXX",
  };
  for (const std::string& path : leftovers) FE_ASSERT_OK(fe::test::WriteFile(path, "half"));
  // Look-alikes that are not a writer's temporary files stay.
  FE_ASSERT_OK(fe::test::WriteFile(volume + "/notes.tmp-1", "keep"));
  FE_ASSERT_OK(fixture_.Open());
  for (const std::string& path : leftovers) {
    EXPECT_FALSE(Exists(path)) << path;
    EXPECT_TRUE(Mentions(engine().recovery(), "removed " + path + ": a write cut short")) << path;
  }
  EXPECT_TRUE(Exists(volume + "/notes.tmp-1"));
  EXPECT_TRUE(Exists(volume + "/config.json"));
  EXPECT_EQ(engine().Get("a")->state, InstanceState::kStandby);
}

TEST_F(EngineTest, FanOutNeverAnsweredIsRemovedWholeAtStart) {
  FE_ASSERT_OK(fixture_.ImportTemplate("src"));
  ForkRequest request;
  request.name = "fan";
  request.count = 3;
  Result<std::vector<ForkOutcome>> forks = engine().Fork("src", request);
  FE_ASSERT_OK(forks);
  std::string ids;
  for (const ForkOutcome& fork : *forks) ids += std::string(ids.empty() ? "" : ",") + "\"" + fork.instance.id + "\"";
  EXPECT_TRUE(fe::test::ListDir(fixture_.DataRoot() + "/groups")->empty()) << "an answered fan-out left its record";
  // A crash after the members were made but before the fan-out was answered leaves its record.
  fixture_.Close();
  const std::string record = fixture_.DataRoot() + "/groups/" + forks->front().instance.id + ".json";
  FE_ASSERT_OK(fe::test::WriteFile(record, "{\"members\":[" + ids + "]}"));
  FE_ASSERT_OK(fixture_.Open());
  for (const ForkOutcome& fork : *forks) {
    EXPECT_EQ(engine().Get(fork.instance.id).status().code(), ErrorCode::kNotFound);
    EXPECT_FALSE(Exists(engine().backend().Path(fork.instance.volume)));
    EXPECT_TRUE(Mentions(engine().recovery(), "removed " + fork.instance.id + ": a member of a fan-out"));
  }
  EXPECT_FALSE(Exists(record));
  EXPECT_EQ(engine().List().size(), 1u);
  FE_EXPECT_OK(engine().Fork("src", request).status());  // the names are free again
}

TEST_F(EngineTest, WhatCreateAcceptsSurvivesARestartAndWhatItCannotKeepIsRefused) {
  CreateRequest largest = Request("largest");
  largest.vcpus = kMaxVcpus;
  FE_ASSERT_OK(engine().Create(largest));
  CreateRequest too_many = Request("too-many");
  too_many.vcpus = kMaxVcpus + 904;  // 5000
  Result<Instance> refused = engine().Create(too_many);
  EXPECT_EQ(refused.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("vcpus 5000 is not 1..4096"), std::string::npos)
      << refused.status().message();
  FE_ASSERT_OK(fixture_.Reopen());
  Result<Instance> kept = engine().Get("largest");
  FE_ASSERT_OK(kept);
  EXPECT_EQ(kept->vcpus, kMaxVcpus);
  EXPECT_EQ(engine().List().size(), 1u);
  EXPECT_TRUE(engine().recovery().actions.empty()) << ::testing::PrintToString(engine().recovery().actions);
}

TEST_F(EngineTest, StorageReportsBackendVolumesAndFilesystem) {
  FE_ASSERT_OK(fixture_.ImportTemplate("a"));
  Result<StorageInfo> info = engine().Storage();
  FE_ASSERT_OK(info);
  EXPECT_EQ(info->backend, "reflink");
  EXPECT_EQ(info->root, fixture_.DataRoot() + "/volumes");
  EXPECT_FALSE(info->selection_reason.empty());
  EXPECT_EQ(info->volumes, 1u);
  EXPECT_GT(info->filesystem_bytes, 0u);
  EXPECT_GT(info->filesystem_free_bytes, 0u);
  EXPECT_LE(info->filesystem_free_bytes, info->filesystem_bytes);
}

TEST_F(EngineTest, StartStopStandbyRestoreDriveARealProcess) {
  CreateRequest request = Request("vm", "cloud-hypervisor", fixture_.template_dir(), InstanceState::kStopped);
  Result<Instance> created = engine().Create(request);
  FE_ASSERT_OK(created);
  Result<Instance> running = engine().Start("vm");
  FE_ASSERT_OK(running);
  ASSERT_EQ(running->state, InstanceState::kRunning);
  ASSERT_TRUE(running->process.has_value());
  EXPECT_TRUE(vm::VmProcessAlive(*running->process));
  EXPECT_EQ(engine().Start("vm").status().code(), ErrorCode::kFailedPrecondition);

  Result<Instance> standby = engine().Standby("vm");
  FE_ASSERT_OK(standby);
  EXPECT_EQ(standby->state, InstanceState::kStandby);
  EXPECT_FALSE(standby->process.has_value());
  EXPECT_FALSE(vm::VmProcessAlive(*running->process));
  EXPECT_TRUE(Exists(engine().backend().Path(created->volume) + "/snapshot/config.json"));

  Result<Instance> restored = engine().Restore("vm");
  FE_ASSERT_OK(restored);
  EXPECT_EQ(restored->state, InstanceState::kRunning);
  vm::ProcessRecord process = *restored->process;
  // A Running instance survives a daemon restart with its process.
  FE_ASSERT_OK(fixture_.Reopen());
  EXPECT_TRUE(engine().recovery().actions.empty());
  EXPECT_EQ(engine().Get("vm")->state, InstanceState::kRunning);

  Result<Instance> stopped = engine().Stop("vm");
  FE_ASSERT_OK(stopped);
  EXPECT_EQ(stopped->state, InstanceState::kStopped);
  EXPECT_FALSE(vm::VmProcessAlive(process));
  FE_ASSERT_OK(engine().Start("vm"));
  vm::ProcessRecord second = *engine().Get("vm")->process;
  FE_ASSERT_OK(engine().Delete("vm"));  // stops it first
  EXPECT_FALSE(vm::VmProcessAlive(second));
}

}  // namespace
}  // namespace fe::engine
