// Shared-memory forks in the engine (engine/shared_memory.cc), with the test plugin told where a
// snapshot's memory file is (the cloud-hypervisor fixture's snapshot/memory-ranges) and given the
// capability: forks record and restore from the template's file, drop their own copy, the template is
// guarded while anything maps its file (also after a restart), and each refusal says why. Pools'
// default is tested in pools/pool_test.cc.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "engine/engine.h"
#include "tests/engine/engine_fixture.h"

namespace fe::engine {
namespace {

using fe::test::ScratchFs;
using test::EngineFixture;

constexpr char kMemoryFile[] = "snapshot/memory-ranges";

ForkRequest SharedRequest(std::string name, int count, InstanceState target) {
  ForkRequest request;
  request.name = std::move(name);
  request.count = count;
  request.target_state = target;
  request.memory = MemoryMode::kShared;
  return request;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

class SharedMemoryTest : public fe::test::ScratchTest {
 protected:
  void SetUp() override {
    FE_SCRATCH_DIR(scratch, ScratchFs::kXfs);
    hypervisor::PluginCapabilities capabilities = fixture_.plugin().Capabilities();
    capabilities.shared_memory = true;
    fixture_.plugin().capabilities = capabilities;
    fixture_.plugin().snapshot_memory_file = kMemoryFile;
    FE_ASSERT_OK(fixture_.Init(scratch));
    Result<Instance> source = fixture_.ImportTemplate("tpl");
    FE_ASSERT_OK(source);
    ASSERT_EQ(source->state, InstanceState::kStandby);
    template_ = *source;
    template_file_ = GuestDir(template_) + "/" + kMemoryFile;
  }
  // The stand-in hypervisor processes outlive the engine, as VMs do: stopped, so the scratch
  // filesystem holding their logs can be unmounted.
  void TearDown() override {
    for (const Instance& instance : engine().List()) {
      if (instance.state != InstanceState::kRunning) continue;
      EXPECT_TRUE(engine().Stop(instance.id).ok()) << instance.name;
    }
  }
  Engine& engine() { return fixture_.engine(); }
  std::string GuestDir(const Instance& instance) { return engine().backend().Path(instance.volume); }
  Instance Get(const std::string& name) {
    Result<Instance> instance = engine().Get(name);
    EXPECT_TRUE(instance.ok()) << instance.status().ToString();
    return instance.ok() ? *instance : Instance{};
  }
  std::vector<std::string> RestoredMemory() {
    std::lock_guard lock(fixture_.plugin().restores_mutex);
    return fixture_.plugin().restored_memory;
  }

  EngineFixture fixture_;
  Instance template_;
  std::string template_file_;
};

TEST_F(SharedMemoryTest, SharedForksRestoreFromTheTemplatesFileRecordItAndKeepNoCopyOfTheirOwn) {
  Result<std::string> before = fe::test::ReadFile(template_file_);
  FE_ASSERT_OK(before);
  Result<std::vector<ForkOutcome>> forks = engine().Fork("tpl", SharedRequest("f", 3, InstanceState::kRunning));
  FE_ASSERT_OK(forks);
  ASSERT_EQ(forks->size(), 3u);
  for (const ForkOutcome& fork : *forks) {
    ASSERT_TRUE(fork.instance.shared_memory.has_value()) << fork.instance.name;
    EXPECT_EQ(fork.instance.shared_memory->instance_id, template_.id);
    EXPECT_EQ(fork.instance.shared_memory->file, template_file_);
    EXPECT_EQ(fork.instance.state, InstanceState::kRunning);
    EXPECT_FALSE(Exists(GuestDir(fork.instance) + "/" + kMemoryFile)) << "the fork's unused copy of the memory file";
    EXPECT_TRUE(Exists(GuestDir(fork.instance) + "/snapshot/state.json")) << "the rest of the snapshot is its own";
  }
  EXPECT_EQ(RestoredMemory(), std::vector<std::string>(3, template_file_)) << "each restore mapped the template's file";
  struct stat st {};
  ASSERT_EQ(::stat(template_file_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u) << "the mapped file is read-only";
  Result<std::string> after = fe::test::ReadFile(template_file_);
  FE_ASSERT_OK(after);
  EXPECT_TRUE(*after == *before) << "the template's memory file changed";

  // A private fork of the same template restores from its own copy, as before.
  ForkRequest private_request = SharedRequest("q", 1, InstanceState::kRunning);
  private_request.memory = std::nullopt;
  Result<std::vector<ForkOutcome>> private_fork = engine().Fork("tpl", private_request);
  FE_ASSERT_OK(private_fork);
  EXPECT_FALSE(private_fork->front().instance.shared_memory.has_value());
  EXPECT_TRUE(Exists(GuestDir(private_fork->front().instance) + "/" + kMemoryFile));
  EXPECT_EQ(RestoredMemory().back(), "") << "a private fork's restore maps nothing";
}

TEST_F(SharedMemoryTest, TheTemplateIsNotRestoredStartedOrDeletedWhileForksMapItAndTheErrorNamesThem) {
  FE_ASSERT_OK(engine().Fork("tpl", SharedRequest("run", 1, InstanceState::kRunning)));
  FE_ASSERT_OK(engine().Fork("tpl", SharedRequest("wait", 1, InstanceState::kStandby)));
  for (const Status& refused : {engine().Restore("tpl").status(), engine().Delete("tpl")}) {
    EXPECT_EQ(refused.code(), ErrorCode::kFailedPrecondition) << refused.ToString();
    EXPECT_NE(refused.message().find("'run'"), std::string::npos) << refused.ToString();
    EXPECT_NE(refused.message().find("'wait'"), std::string::npos) << refused.ToString();
    EXPECT_NE(refused.message().find(template_file_), std::string::npos) << refused.ToString();
  }
  EXPECT_EQ(Get("tpl").state, InstanceState::kStandby);

  // What a restarted forkd reads back knows the mappings too.
  FE_ASSERT_OK(fixture_.Reopen());
  ASSERT_TRUE(Get("run").shared_memory.has_value());
  EXPECT_EQ(Get("run").shared_memory->file, template_file_);
  EXPECT_EQ(engine().Restore("tpl").status().code(), ErrorCode::kFailedPrecondition);

  // Stopping one (its next boot has fresh RAM) and standing the other by (its RAM saved in full into
  // its own snapshot) ends their mappings; then the template may run again.
  Result<Instance> stopped = engine().Stop("run");
  FE_ASSERT_OK(stopped);
  EXPECT_FALSE(stopped->shared_memory.has_value());
  EXPECT_EQ(engine().Restore("tpl").status().code(), ErrorCode::kFailedPrecondition) << "'wait' still maps it";
  FE_ASSERT_OK(engine().Restore("wait"));
  Result<Instance> saved = engine().Standby("wait");
  FE_ASSERT_OK(saved);
  EXPECT_FALSE(saved->shared_memory.has_value());
  FE_ASSERT_OK(engine().Restore("tpl"));
  FE_ASSERT_OK(engine().Delete("tpl"));
}

TEST_F(SharedMemoryTest, AForkWhoseProcessDiedWhileForkdWasDownNoLongerMapsTheFileAfterRecovery) {
  Result<std::vector<ForkOutcome>> forks = engine().Fork("tpl", SharedRequest("gone", 1, InstanceState::kRunning));
  FE_ASSERT_OK(forks);
  ASSERT_TRUE(forks->front().instance.process.has_value());
  fixture_.Close();
  const pid_t pid = forks->front().instance.process->pid;
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ::waitpid(pid, nullptr, 0);  // the engine that started it is gone: reaped here
  FE_ASSERT_OK(fixture_.Open());
  Instance gone = Get("gone");
  EXPECT_EQ(gone.state, InstanceState::kStopped);
  EXPECT_FALSE(gone.shared_memory.has_value());
  // Nothing maps the template's file any more.
  FE_ASSERT_OK(engine().Restore("tpl"));
}

TEST_F(SharedMemoryTest, AStandbySharedForkThatNeverRanPassesItsMappingOnAndRefusesPrivateForks) {
  FE_ASSERT_OK(engine().Fork("tpl", SharedRequest("child", 1, InstanceState::kStandby)));
  Result<std::vector<ForkOutcome>> grandchild =
      engine().Fork("child", SharedRequest("grandchild", 1, InstanceState::kRunning));
  FE_ASSERT_OK(grandchild);
  ASSERT_TRUE(grandchild->front().instance.shared_memory.has_value());
  EXPECT_EQ(grandchild->front().instance.shared_memory->instance_id, template_.id)
      << "it maps the template's file, which the child's snapshot ran on";
  EXPECT_EQ(grandchild->front().instance.shared_memory->file, template_file_);

  ForkRequest private_request = SharedRequest("own", 1, InstanceState::kRunning);
  private_request.memory = MemoryMode::kPrivate;
  Result<std::vector<ForkOutcome>> refused = engine().Fork("child", private_request);
  EXPECT_EQ(refused.status().code(), ErrorCode::kFailedPrecondition) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find(template_.id), std::string::npos) << refused.status().ToString();
  EXPECT_FALSE(engine().Get("own").ok()) << "nothing of the refused fork exists";
  // Booting it fresh needs no RAM of the snapshot.
  private_request.target_state = InstanceState::kStopped;
  FE_ASSERT_OK(engine().Fork("child", private_request));
}

TEST_F(SharedMemoryTest, RefusalsSayWhyAndLeaveNothing) {
  // A Stopped fork boots with fresh RAM: 400.
  Result<std::vector<ForkOutcome>> stopped = engine().Fork("tpl", SharedRequest("s", 1, InstanceState::kStopped));
  EXPECT_EQ(stopped.status().code(), ErrorCode::kInvalidArgument) << stopped.status().ToString();

  // A running source keeps writing its RAM: 409.
  FE_ASSERT_OK(engine().Fork("tpl", SharedRequest("mapper", 1, InstanceState::kStandby)));
  ForkRequest private_request = SharedRequest("runner", 1, InstanceState::kRunning);
  private_request.memory = MemoryMode::kPrivate;
  FE_ASSERT_OK(engine().Fork("tpl", private_request));
  ForkRequest from_running = SharedRequest("r", 1, InstanceState::kRunning);
  from_running.from_running = true;
  Result<std::vector<ForkOutcome>> running = engine().Fork("runner", from_running);
  EXPECT_EQ(running.status().code(), ErrorCode::kFailedPrecondition) << running.status().ToString();
  EXPECT_NE(running.status().message().find("Running"), std::string::npos) << running.status().ToString();
  EXPECT_EQ(Get("runner").state, InstanceState::kRunning);

  // A hypervisor that copies memory at restore cannot share: the plugin's reason, 422 unsupported.
  fixture_.plugin().snapshot_memory_file = nullptr;
  Result<std::vector<ForkOutcome>> unsupported = engine().Fork("tpl", SharedRequest("u", 1, InstanceState::kRunning));
  EXPECT_EQ(unsupported.status().code(), ErrorCode::kUnsupported) << unsupported.status().ToString();
  EXPECT_NE(unsupported.status().message().find("copies"), std::string::npos) << unsupported.status().ToString();
  for (const char* name : {"s", "r", "u"}) EXPECT_FALSE(engine().Get(name).ok()) << name;
}

}  // namespace
}  // namespace fe::engine
