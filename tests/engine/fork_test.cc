// Forks on real reflink (XFS) and snapshot (btrfs) storage: the fork's files point into its own
// volume and carry its new identity, lineage is recorded, the source is never written, every
// refusal has its error code, a failed fan-out leaves nothing behind, concurrent forks get distinct
// identities, and a delete racing forks never leaves a broken instance.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/data_root.h"
#include "engine/engine.h"
#include "engine/instance_store.h"
#include "engine/vm/vm_runner.h"
#include "tests/engine/engine_fixture.h"

namespace fe::engine {
namespace {

using fe::test::ScratchFs;
using test::EngineFixture;

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

ForkRequest Request(std::string name, int count = 1, std::optional<InstanceState> target = std::nullopt,
                    bool from_running = false) {
  ForkRequest request;
  request.name = std::move(name);
  request.count = count;
  request.target_state = target;
  request.from_running = from_running;
  return request;
}

class ForkTest : public fe::test::ScratchTest, public ::testing::WithParamInterface<ScratchFs> {
 protected:
  void SetUp() override {
    FE_SCRATCH_DIR(scratch, GetParam());
    FE_ASSERT_OK(fixture_.Init(scratch));
    Result<Instance> source = fixture_.ImportTemplate("src");
    FE_ASSERT_OK(source);
    source_ = *source;
  }
  Engine& engine() { return fixture_.engine(); }
  std::string GuestDir(const Instance& instance) { return engine().backend().Path(instance.volume); }
  fe::test::TreeSnapshot SourceTree() {
    Result<fe::test::TreeSnapshot> tree = fe::test::SnapshotTree(GuestDir(source_));
    EXPECT_TRUE(tree.ok()) << tree.status().ToString();
    return tree.ok() ? *tree : fe::test::TreeSnapshot{};
  }
  // Every listed instance is whole: valid metadata on disk equal to what is listed, and its volume;
  // and nothing else exists: no other volume, metadata directory or lease.
  void ExpectOnlyWholeInstances() {
    std::vector<Instance> listed = engine().List();
    Result<InstanceStore> store = InstanceStore::Open(DataRoot(fixture_.DataRoot()).Instances());
    ASSERT_TRUE(store.ok());
    std::set<std::string> ids, volumes;
    for (const Instance& instance : listed) {
      Result<Instance> on_disk = store->Read(instance.id);
      ASSERT_TRUE(on_disk.ok()) << on_disk.status().ToString();
      EXPECT_EQ(InstanceToJson(*on_disk), InstanceToJson(instance));
      EXPECT_NE(instance.state, InstanceState::kCreating);
      EXPECT_TRUE(Exists(GuestDir(instance) + "/config.json")) << instance.name;
      ids.insert(instance.id);
      volumes.insert(instance.volume);
    }
    Result<std::vector<std::string>> backend_volumes = fixture_.engine().Storage().ok()
                                                           ? Result<std::vector<std::string>>(ListVolumes())
                                                           : Result<std::vector<std::string>>(Status::Io("storage"));
    ASSERT_TRUE(backend_volumes.ok());
    EXPECT_EQ(std::set<std::string>(backend_volumes->begin(), backend_volumes->end()), volumes);
    Result<std::vector<std::string>> dirs = store->ListIds();
    ASSERT_TRUE(dirs.ok());
    EXPECT_EQ(std::set<std::string>(dirs->begin(), dirs->end()), ids);
  }
  std::vector<std::string> ListVolumes() {
    // The backend is const through Engine::backend(); listing is read-only, so go through a fresh
    // directory listing of its root (volumes are its entries, temporaries are hidden).
    Result<std::vector<std::string>> names = fe::test::ListDir(engine().backend().Root());
    std::vector<std::string> volumes;
    for (const std::string& name : names.ok() ? *names : std::vector<std::string>{}) {
      if (!name.empty() && name.front() != '.') volumes.push_back(name);
    }
    return volumes;
  }
  std::set<std::string> LeaseHolders() {
    std::set<std::string> holders;
    fixture_.Close();
    {
      Result<std::unique_ptr<network::NetworkAllocator>> network =
          network::NetworkAllocator::Open(fixture_.NetworkDir(), DefaultNetworkPool());
      EXPECT_TRUE(network.ok()) << network.status().ToString();
      if (network.ok()) {
        for (const auto& [holder, identity] : (*network)->Leases()) holders.insert(holder);
      }
    }
    Status reopened = fixture_.Open();
    EXPECT_TRUE(reopened.ok()) << reopened.ToString();
    return holders;
  }

  EngineFixture fixture_;
  Instance source_;
};

TEST_P(ForkTest, ForkOfStandbySourceHasItsOwnPathsIdentityAndLineage) {
  fe::test::TreeSnapshot before = SourceTree();
  Result<std::vector<ForkOutcome>> forked = engine().Fork("src", Request("child"));
  FE_ASSERT_OK(forked);
  ASSERT_EQ(forked->size(), 1u);
  const ForkOutcome& outcome = forked->front();
  const Instance& fork = outcome.instance;
  EXPECT_EQ(fork.name, "child");
  EXPECT_NE(fork.id, source_.id);
  EXPECT_EQ(fork.volume, fork.id);
  EXPECT_EQ(fork.state, InstanceState::kStandby);
  EXPECT_EQ(fork.parent_id, source_.id);
  EXPECT_FALSE(fork.forked_at.empty());
  EXPECT_GE(fork.created_at, source_.created_at);
  EXPECT_FALSE(fork.process.has_value());
  EXPECT_NE(fork.identity.ipv4, source_.identity.ipv4);
  EXPECT_NE(fork.identity.mac, source_.identity.mac);
  EXPECT_NE(fork.identity.tap_device, source_.identity.tap_device);
  EXPECT_NE(fork.identity.vsock_cid, source_.identity.vsock_cid);

  std::string dir = GuestDir(fork);
  for (const char* file : {"config.json", "snapshot/config.json"}) {
    auto config = nlohmann::json::parse(*fe::test::ReadFile(dir + "/" + file));
    EXPECT_EQ(config["disks"][0]["path"], dir + "/rootfs.raw") << file;
    EXPECT_EQ(config["disks"][1]["path"], "/data/vm-10/disk") << file;  // read-only, outside: kept
    EXPECT_EQ(config["payload"]["kernel"], dir + "/vmlinux") << file;
    EXPECT_EQ(config["net"][0]["mac"], fork.identity.mac) << file;
    EXPECT_EQ(config["net"][0]["tap"], fork.identity.tap_device) << file;
    EXPECT_EQ(config["serial"]["file"], dir + "/logs/serial.log") << file;
  }
  // The data was cloned, not rewritten.
  EXPECT_EQ(*fe::test::ContentDigest(dir + "/rootfs.raw"), *fe::test::ContentDigest(GuestDir(source_) + "/rootfs.raw"));
  EXPECT_EQ(*fe::test::ContentDigest(dir + "/snapshot/memory-ranges"),
            *fe::test::ContentDigest(GuestDir(source_) + "/snapshot/memory-ranges"));

  EXPECT_FALSE(outcome.mechanism.empty());
  const ForkPhases& phases = outcome.phases;
  EXPECT_GT(phases.clone_us, 0);
  EXPECT_GT(phases.rewrite_us, 0);
  EXPECT_GT(phases.metadata_us, 0);
  EXPECT_EQ(phases.source_standby_us, 0);
  EXPECT_EQ(phases.restore_us, 0);
  EXPECT_GE(phases.total_us, phases.lock_wait_us + phases.clone_us + phases.rewrite_us + phases.metadata_us);
  if (GetParam() == ScratchFs::kXfs) {
    EXPECT_EQ(outcome.mechanism, "reflink");
    EXPECT_GT(outcome.files, 0u);
    EXPECT_GT(outcome.shared_bytes, 0u);
  }

  EXPECT_EQ(fe::test::DiffSnapshots(before, SourceTree()), "");
  EXPECT_EQ(engine().Get("child")->id, fork.id);
  ExpectOnlyWholeInstances();
}

TEST_P(ForkTest, ForkIntoStoppedOrOfAStoppedSourceBootsFromItsConfig) {
  Result<std::vector<ForkOutcome>> stopped = engine().Fork("src", Request("cold", 1, InstanceState::kStopped));
  FE_ASSERT_OK(stopped);
  EXPECT_EQ(stopped->front().instance.state, InstanceState::kStopped);
  // A Stopped source has no snapshot to give: a Standby fork of it is booted, then stood by (as the
  // reference design does), so it has a snapshot of its own and restores from it.
  Result<std::vector<ForkOutcome>> standby = engine().Fork("cold", Request("warm", 1, InstanceState::kStandby));
  FE_ASSERT_OK(standby);
  EXPECT_EQ(standby->front().instance.state, InstanceState::kStandby);
  EXPECT_FALSE(standby->front().instance.process.has_value());
  EXPECT_EQ(engine().Get("cold")->state, InstanceState::kStopped);
  Result<Instance> restored = engine().Restore("warm");
  FE_ASSERT_OK(restored);
  EXPECT_EQ(restored->state, InstanceState::kRunning);
  FE_ASSERT_OK(engine().Stop("warm"));
  Result<std::vector<ForkOutcome>> grandchild = engine().Fork("cold", Request("grandchild"));
  FE_ASSERT_OK(grandchild);
  EXPECT_EQ(grandchild->front().instance.state, InstanceState::kStopped);
  EXPECT_EQ(grandchild->front().instance.parent_id, stopped->front().instance.id);
  ExpectOnlyWholeInstances();
}

TEST_P(ForkTest, RefusalsCarryTheirErrorCodes) {
  FE_ASSERT_OK(engine().Fork("src", Request("taken")));
  EXPECT_EQ(engine().Fork("src", Request("taken")).status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(engine().Fork("src", Request("src")).status().code(), ErrorCode::kAlreadyExists);
  // count > 1 names <name>-<i>: one taken name refuses them all.
  FE_ASSERT_OK(engine().Fork("src", Request("web-2")));
  EXPECT_EQ(engine().Fork("src", Request("web", 3)).status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(engine().Get("web-1").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(engine().Fork("src", Request("Bad_Name")).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(engine().Fork("src", Request(std::string(62, 'a'), 10)).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(engine().Fork("src", Request("n", 0)).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(engine().Fork("src", Request("n", 65)).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(engine().Fork("src", Request("n", 1, InstanceState::kCreating)).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(engine().Fork("nope", Request("n")).status().code(), ErrorCode::kNotFound);
  ExpectOnlyWholeInstances();
}

TEST_P(ForkTest, WritableAttachedVolumeIsRefusedNamingIt) {
  CreateRequest request;
  request.name = "shared";
  request.hypervisor = "cloud-hypervisor";
  request.import_dir = fixture_.template_dir();
  request.attached_volumes = {{"/srv/ro.img", true}, {"/srv/shared-rw.img", false}};
  FE_ASSERT_OK(engine().Create(request));
  Result<std::vector<ForkOutcome>> forked = engine().Fork("shared", Request("copy"));
  EXPECT_EQ(forked.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(forked.status().message().find("/srv/shared-rw.img"), std::string::npos) << forked.status().message();
  EXPECT_EQ(engine().Get("copy").status().code(), ErrorCode::kNotFound);
}

TEST_P(ForkTest, HypervisorWithoutTheCapabilityIsUnsupported) {
  hypervisor::PluginCapabilities none;
  fixture_.plugin().capabilities = none;
  Result<std::vector<ForkOutcome>> forked = engine().Fork("src", Request("copy"));
  EXPECT_EQ(forked.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(forked.status().message().find("cannot fork a Standby instance"), std::string::npos);
  fixture_.plugin().capabilities.reset();
  FE_EXPECT_OK(engine().Fork("src", Request("copy")));  // the refusal released the name
}

TEST_P(ForkTest, FailedForkNamesTheStepAndFanOutFailureRollsBackEveryFork) {
  fe::test::TreeSnapshot before = SourceTree();
  std::set<std::string> leases_before = LeaseHolders();
  fixture_.plugin().prepare_calls = 0;
  fixture_.plugin().fail_prepare_on = 3;
  Result<std::vector<ForkOutcome>> forked = engine().Fork("src", Request("fan", 5));
  ASSERT_FALSE(forked.ok());
  EXPECT_EQ(forked.status().code(), ErrorCode::kIo);
  EXPECT_NE(forked.status().message().find("of 'src': rewrite: "), std::string::npos) << forked.status().message();
  EXPECT_NE(forked.status().message().find("injected PrepareFork failure"), std::string::npos);
  EXPECT_GE(fixture_.plugin().prepare_calls.load(), 3);
  for (int i = 1; i <= 5; ++i)
    EXPECT_EQ(engine().Get("fan-" + std::to_string(i)).status().code(), ErrorCode::kNotFound);
  ASSERT_EQ(engine().List().size(), 1u);
  ExpectOnlyWholeInstances();                // no volume, no metadata directory of any fork
  EXPECT_EQ(LeaseHolders(), leases_before);  // no lease of any fork
  EXPECT_EQ(fe::test::DiffSnapshots(before, SourceTree()), "");

  // The names were released: the same request works once the plugin does.
  fixture_.plugin().fail_prepare_on = 0;
  Result<std::vector<ForkOutcome>> retried = engine().Fork("src", Request("fan", 5));
  FE_ASSERT_OK(retried);
  ASSERT_EQ(retried->size(), 5u);
  std::set<std::string> names;
  for (const ForkOutcome& outcome : *retried) names.insert(outcome.instance.name);
  EXPECT_EQ(names, (std::set<std::string>{"fan-1", "fan-2", "fan-3", "fan-4", "fan-5"}));
  ExpectOnlyWholeInstances();
}

TEST_P(ForkTest, FiftyConcurrentForksGetDistinctIdsNamesAndIdentities) {
  fe::test::TreeSnapshot before = SourceTree();
  constexpr int kForks = 50;
  std::vector<Result<std::vector<ForkOutcome>>> results(kForks, Status::Internal("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kForks; ++i) {
    threads.emplace_back([&, i] { results[i] = engine().Fork("src", Request("c" + std::to_string(i))); });
  }
  for (std::thread& thread : threads) thread.join();
  std::set<std::string> ids, names, ips, macs, taps;
  std::set<uint32_t> cids;
  for (const auto& result : results) {
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    const Instance& fork = result->front().instance;
    ids.insert(fork.id);
    names.insert(fork.name);
    ips.insert(fork.identity.ipv4);
    macs.insert(fork.identity.mac);
    taps.insert(fork.identity.tap_device);
    cids.insert(fork.identity.vsock_cid);
    auto config = nlohmann::json::parse(*fe::test::ReadFile(GuestDir(fork) + "/config.json"));
    EXPECT_EQ(config["net"][0]["mac"], fork.identity.mac);
  }
  for (const auto* set : {&ids, &names, &ips, &macs, &taps}) EXPECT_EQ(set->size(), size_t{kForks});
  EXPECT_EQ(cids.size(), size_t{kForks});
  EXPECT_EQ(ips.count(source_.identity.ipv4), 0u);
  EXPECT_EQ(engine().List().size(), size_t{kForks + 1});
  EXPECT_EQ(fe::test::DiffSnapshots(before, SourceTree()), "");
  ExpectOnlyWholeInstances();
}

TEST_P(ForkTest, DeleteRacingForksNeverLeavesABrokenInstance) {
  std::atomic<bool> stop{false};
  std::atomic<int> made{0};
  std::vector<std::thread> forkers;
  for (int t = 0; t < 3; ++t) {
    forkers.emplace_back([&, t] {
      for (int i = 0; !stop && i < 40; ++i) {
        std::string name = "r";  // appended: GCC 12 -O3 warns falsely (-Wrestrict) on "r" + std::to_string(t)
        name.append(std::to_string(t)).append("-").append(std::to_string(i));
        Result<std::vector<ForkOutcome>> forked = engine().Fork("src", Request(name));
        if (forked.ok()) {
          ++made;
        } else {
          // Once the source is deleted, forks of it find nothing; nothing else may fail.
          EXPECT_EQ(forked.status().code(), ErrorCode::kNotFound) << forked.status().ToString();
        }
      }
    });
  }
  // Meanwhile: delete forks as they appear, then the source itself.
  std::thread deleter([&] {
    int deleted = 0;
    while (made < 6) std::this_thread::yield();
    for (const Instance& instance : engine().List()) {
      if (instance.name != "src" && deleted++ < 4) FE_EXPECT_OK(engine().Delete(instance.id));
    }
    FE_EXPECT_OK(engine().Delete("src"));
  });
  deleter.join();
  stop = true;
  for (std::thread& thread : forkers) thread.join();
  EXPECT_EQ(engine().Get("src").status().code(), ErrorCode::kNotFound);
  ExpectOnlyWholeInstances();
  std::set<std::string> ids;
  for (const Instance& instance : engine().List()) ids.insert(instance.id);
  EXPECT_EQ(LeaseHolders(), ids);
  EXPECT_TRUE(engine().recovery().actions.empty()) << ::testing::PrintToString(engine().recovery().actions);
}

TEST_P(ForkTest, RunningSourceNeedsFromRunningAndIsRestoredOnEveryPath) {
  CreateRequest request;
  request.name = "live";
  request.hypervisor = "cloud-hypervisor";
  request.import_dir = fixture_.template_dir();
  request.state = InstanceState::kStopped;
  FE_ASSERT_OK(engine().Create(request));
  FE_ASSERT_OK(engine().Start("live"));

  Result<std::vector<ForkOutcome>> refused = engine().Fork("live", Request("x"));
  EXPECT_EQ(refused.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("from_running"), std::string::npos);

  // A failing fork still puts the source back.
  fixture_.plugin().prepare_calls = 0;
  fixture_.plugin().fail_prepare_on = 1;
  Result<std::vector<ForkOutcome>> failed = engine().Fork("live", Request("x", 1, InstanceState::kStandby, true));
  EXPECT_EQ(failed.status().code(), ErrorCode::kIo);
  Result<Instance> live = engine().Get("live");
  ASSERT_EQ(live->state, InstanceState::kRunning);
  EXPECT_TRUE(vm::VmProcessAlive(*live->process));
  EXPECT_EQ(engine().Get("x").status().code(), ErrorCode::kNotFound);

  fixture_.plugin().fail_prepare_on = 0;
  Result<std::vector<ForkOutcome>> forked = engine().Fork("live", Request("x", 1, InstanceState::kStandby, true));
  FE_ASSERT_OK(forked);
  const ForkOutcome& outcome = forked->front();
  EXPECT_EQ(outcome.instance.state, InstanceState::kStandby);
  EXPECT_GT(outcome.phases.source_standby_us, 0);
  EXPECT_GT(outcome.phases.restore_us, 0);
  live = engine().Get("live");
  ASSERT_EQ(live->state, InstanceState::kRunning);
  EXPECT_TRUE(vm::VmProcessAlive(*live->process));
  // The fork's snapshot config is the source's fresh snapshot, moved to the fork.
  auto config = nlohmann::json::parse(*fe::test::ReadFile(GuestDir(outcome.instance) + "/snapshot/config.json"));
  EXPECT_EQ(config["disks"][0]["path"], GuestDir(outcome.instance) + "/rootfs.raw");

  // Running forks of a running source: restored from the snapshot right away.
  Result<std::vector<ForkOutcome>> running = engine().Fork("live", Request("hot", 2, std::nullopt, true));
  FE_ASSERT_OK(running);
  for (const ForkOutcome& fork : *running) {
    EXPECT_EQ(fork.instance.state, InstanceState::kRunning);
    ASSERT_TRUE(fork.instance.process.has_value());
    EXPECT_TRUE(vm::VmProcessAlive(*fork.instance.process));
  }
  for (const char* name : {"hot-1", "hot-2", "live"}) FE_EXPECT_OK(engine().Delete(name));
  ExpectOnlyWholeInstances();
}

// Notes its release among the controller's calls; never throttles anything.
class CallNotingThrottle final : public vm::CpuThrottle {
 public:
  explicit CallNotingThrottle(const test::TestPlugin& plugin) : plugin_(plugin) {}
  Status Set(int) override { return Status::Ok(); }
  Status Release() override {
    plugin_.NoteCall("throttle released");
    return Status::Ok();
  }

 private:
  const test::TestPlugin& plugin_;
};

// A throttled hypervisor answers `stop` late: the live path gives the source its CPU back before it
// asks for the pause, so the throttle never stretches the pause (engine/live_fork.cc).
TEST_P(ForkTest, ALiveForkGivesTheSourceItsCpuBackBeforeItPausesIt) {
  if (!engine().backend().Capabilities().shares_data) GTEST_SKIP() << "the live path needs clones that share data";
  hypervisor::PluginCapabilities capabilities = fixture_.plugin().Capabilities();
  capabilities.live_snapshot = true;
  fixture_.plugin().capabilities = capabilities;
  fixture_.plugin().running_memory_file = "memory/mem0";
  fixture_.throttle = [this](pid_t) -> Result<std::unique_ptr<vm::CpuThrottle>> {
    return std::unique_ptr<vm::CpuThrottle>(std::make_unique<CallNotingThrottle>(fixture_.plugin()));
  };
  FE_ASSERT_OK(fixture_.Reopen());
  FE_ASSERT_OK(engine().Restore("src"));
  const size_t before = fixture_.plugin().Calls().size();

  Result<std::vector<ForkOutcome>> forked = engine().Fork("src", Request("hot", 1, InstanceState::kStandby, true));
  FE_ASSERT_OK(forked);
  EXPECT_TRUE(forked->front().live);
  const std::vector<std::string> calls = fixture_.plugin().Calls();
  const std::vector<std::string> fork_calls(calls.begin() + static_cast<std::ptrdiff_t>(before), calls.end());
  EXPECT_EQ(fork_calls, (std::vector<std::string>{"throttle released", "pause", "snapshot", "resume"}));
  Result<Instance> after = engine().Get("src");
  FE_ASSERT_OK(after);
  EXPECT_EQ(after->state, InstanceState::kRunning);
  for (const char* name : {"hot", "src"}) FE_EXPECT_OK(engine().Delete(name));
  ExpectOnlyWholeInstances();
}

// source_pause "background" needs a plugin that snapshots a running VM while it runs; Cloud
// Hypervisor cannot: 422 unsupported naming the hypervisor, and the source runs on in its process.
TEST_P(ForkTest, BackgroundForkOfAHypervisorWithoutBackgroundSnapshotsIsRefusedAndTheSourceRunsOn) {
  Result<Instance> running = engine().Restore("src");
  FE_ASSERT_OK(running);
  ForkRequest request = Request("bg", 1, InstanceState::kRunning, /*from_running=*/true);
  request.source_pause = SourcePause::kBackground;
  Result<std::vector<ForkOutcome>> forked = engine().Fork("src", request);
  ASSERT_FALSE(forked.ok());
  EXPECT_EQ(forked.status().code(), ErrorCode::kUnsupported);
  EXPECT_NE(forked.status().message().find("hypervisor 'cloud-hypervisor' cannot snapshot a running VM while it runs"),
            std::string::npos)
      << forked.status().ToString();
  Result<Instance> after = engine().Get("src");
  FE_ASSERT_OK(after);
  EXPECT_EQ(after->state, InstanceState::kRunning);
  EXPECT_EQ(after->process->pid, running->process->pid);
  EXPECT_TRUE(vm::VmProcessAlive(*after->process));
  ExpectOnlyWholeInstances();
  FE_EXPECT_OK(engine().Delete("src"));  // ends its process
}

INSTANTIATE_TEST_SUITE_P(Filesystems, ForkTest, ::testing::Values(ScratchFs::kXfs, ScratchFs::kBtrfs),
                         [](const ::testing::TestParamInfo<ScratchFs>& info) {
                           return std::string(fe::test::ScratchFsName(info.param));
                         });

}  // namespace
}  // namespace fe::engine
