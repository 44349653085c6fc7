// The "source_pause": "background" path of a from_running fork (engine/background_fork.cc) with real QEMUs
// under TCG: the ticker guest (tests/hypervisor/qemu/qemu_process.h: prints "tick N" on its serial
// log) with anonymous guest RAM, on a reflink XFS scratch filesystem, its NIC on a TAP the engine
// makes and bridges, all inside a network namespace of the test's own.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <set>

#include "base/process.h"
#include "engine/engine.h"
#include "engine/network/tap_device.h"
#include "engine/vm/vm_runner.h"
#include "hypervisor/qemu/qemu_config.h"
#include "hypervisor/qemu/qemu_controller.h"
#include "storage/registry/backend_selection.h"
#include "tests/hypervisor/qemu/qemu_process.h"
#include "tests/support/fault_injecting_backend.h"
#include "tests/support/file_util.h"
#include "tests/support/network_namespace.h"
#include "tests/support/scratch.h"

namespace fe::engine {
namespace {

using namespace std::chrono_literals;
namespace qemu_test = hypervisor::qemu::test;
using hypervisor::qemu::Json;

constexpr char kBridge[] = "febr-bg";

// The running VM's QMP: its run state and whether background-snapshot is on.
struct QmpView {
  std::string run_state;
  bool background_snapshot = false;
};

QmpView Inspect(const vm::ProcessRecord& record) {
  QmpView view;
  Result<std::unique_ptr<hypervisor::VmController>> controller =
      hypervisor::qemu::ConnectController(record.api_socket, 5s);
  if (!controller.ok()) return {controller.status().ToString()};
  auto& qemu = static_cast<hypervisor::qemu::QemuController&>(**controller);
  Result<std::string> state = qemu.RunState();
  view.run_state = state.ok() ? *state : state.status().ToString();
  Result<nlohmann::json> capabilities = qemu.qmp().Execute("query-migrate-capabilities", nullptr, 5s);
  if (capabilities.ok()) {
    for (const nlohmann::json& capability : *capabilities) {
      if (capability.value("capability", "") == "background-snapshot")
        view.background_snapshot = capability.value("state", false);
    }
  }
  return view;
}

bool IsRegularFile(const std::string& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

int LastTick(const std::string& serial_log) {
  std::vector<int> ticks = qemu_test::Ticks(serial_log);
  return ticks.empty() ? -1 : ticks.back();
}

// The ticker guest in `dir` (created) with a NIC, no identity port (it has no agent), and its RAM
// anonymous, or in mem.bin when `memory_file`.
Status MakeTemplate(const std::string& dir, bool memory_file) {
  if (::mkdir(dir.c_str(), 0755) != 0) return Status::FromErrno(errno, "mkdir", dir);
  Result<hypervisor::qemu::Config> config = qemu_test::MakeTickerInstance(dir, 128);
  if (!config.ok()) return config.status();
  if (memory_file) config->memory_file = dir + "/mem.bin";
  std::erase_if(config->chardevs, [](const hypervisor::qemu::Chardev& c) { return !c.virtio_port.empty(); });
  config->nics = {{"net0", "fetemplate", "02:fe:00:00:00:01", "virtio-net-pci", Json::object()}};
  return hypervisor::qemu::WriteConfig(dir, *config);
}

std::set<std::string> Entries(const std::string& dir) {
  std::set<std::string> names;
  std::error_code error;
  for (const auto& item : std::filesystem::directory_iterator(dir, error)) names.insert(item.path().filename());
  return names;
}

class BackgroundForkTest : public fe::test::ScratchTest {
 protected:
  // Runs `body` with an engine on a fresh data root whose instance "src" (from the ticker template,
  // RAM anonymous or in a file) is Running and ticking; skips where QEMU, TAPs or reflink are missing.
  // `faults`: the engine's backend fails the calls they plan (tests/support/fault_injecting_backend.h).
  void WithRunningSource(const std::string& name, bool memory_file,
                         const std::function<void(Engine&, const Instance&, const std::string&)>& body,
                         std::shared_ptr<fe::test::BackendFaults> faults = nullptr) {
    if (std::string why = qemu_test::GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    if (std::string why = network::TapUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    fe::test::ScratchResult scratch = fe::test::Scratch::Root(fe::test::ScratchFs::kXfs);
    if (!scratch.skip.empty()) GTEST_SKIP() << scratch.skip;
    ASSERT_TRUE(scratch.status.ok()) << scratch.status.ToString();
    // A short directory: QEMU's socket paths must fit in sun_path.
    const std::string dir = scratch.path + "/" + name + "-" + std::to_string(::getpid());
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << std::strerror(errno);
    Status made = MakeTemplate(dir + "/template", memory_file);
    ASSERT_TRUE(made.ok()) << made.ToString();

    std::string skip = fe::test::RunInNewNetworkNamespace([&] {
      ASSERT_TRUE(RunProcessChecked({"ip", "link", "add", kBridge, "type", "bridge"}).ok());
      EngineConfig config;
      config.data_root = dir + "/root";
      config.manage_taps = true;
      config.bridge = kBridge;
      config.hypervisor_timeout = 30s;
      EngineDependencies dependencies;
      if (faults) {
        ASSERT_EQ(::mkdir(config.data_root.c_str(), 0700), 0) << std::strerror(errno);
        Result<std::unique_ptr<storage::Backend>> real =
            storage::registry::OpenBackend(config.data_root + "/volumes", "auto");
        ASSERT_TRUE(real.ok()) << real.status().ToString();
        dependencies.backend = std::make_unique<fe::test::FaultInjectingBackend>(std::move(*real), faults);
      }
      Result<std::unique_ptr<Engine>> opened = Engine::Open(config, std::move(dependencies));
      ASSERT_TRUE(opened.ok()) << opened.status().ToString();
      Engine& engine = **opened;
      CreateRequest create;
      create.name = "src";
      create.hypervisor = "qemu";
      create.import_dir = dir + "/template";
      ASSERT_TRUE(engine.Create(create).ok());
      // Whatever a failed assertion leaves running is deleted (stopped) on the way out.
      struct Cleanup {
        Engine& engine;
        ~Cleanup() {
          for (const char* name : {"child-1", "child-2", "child", "src"}) (void)engine.Delete(name);
        }
      } cleanup{engine};
      Result<Instance> source = engine.Start("src");
      ASSERT_TRUE(source.ok()) << source.status().ToString();
      const std::string source_dir = engine.backend().Path(source->volume);
      ASSERT_TRUE(qemu_test::WaitForTick(source_dir + "/serial.log", 3, 60s)) << source_dir;
      body(engine, *source, config.data_root);
    });
    if (!skip.empty()) GTEST_SKIP() << skip;
  }
};

TEST_F(BackgroundForkTest, ForksOfARunningQemuWithAnonymousRamKeepItsProcessAndRunFromTheSnapshotSavedWhileItRan) {
  WithRunningSource("bg", /*memory_file=*/false, [&](Engine& engine, const Instance& source, const std::string&) {
    const std::string source_dir = engine.backend().Path(source.volume);
    const std::set<std::string> source_snapshot_before = Entries(source_dir + "/snapshot");
    ForkRequest request;
    request.name = "child";
    request.from_running = true;
    request.count = 2;
    request.source_pause = SourcePause::kBackground;
    Result<std::vector<ForkOutcome>> forked = engine.Fork("src", request);
    ASSERT_TRUE(forked.ok()) << forked.status().ToString();
    ASSERT_EQ(forked->size(), 2u);
    for (const ForkOutcome& outcome : *forked) {
      EXPECT_TRUE(outcome.live) << "the source was never stopped";
      EXPECT_EQ(outcome.phases.source_standby_us, 0);
      EXPECT_GT(outcome.phases.source_pause_us, 0);
      EXPECT_EQ(outcome.phases.filesystems_frozen_us, 0) << "a guest without an agent is paused, not frozen";
      EXPECT_GT(outcome.phases.background_snapshot_us, 0);
      EXPECT_EQ(outcome.phases.preflush_rounds, 0) << "no RAM file to pre-flush";
      std::printf("fork %s: source paused %lld us, snapshot written while it ran %lld us, restore %lld us\n",
                  outcome.instance.name.c_str(), static_cast<long long>(outcome.phases.source_pause_us),
                  static_cast<long long>(outcome.phases.background_snapshot_us),
                  static_cast<long long>(outcome.phases.restore_us));
    }

    // The source: the same process, running, ticking on, background-snapshot off again, and nothing of
    // the snapshot in its own volume.
    Result<Instance> after = engine.Get("src");
    ASSERT_TRUE(after.ok());
    ASSERT_EQ(after->state, InstanceState::kRunning);
    EXPECT_EQ(after->process->pid, source.process->pid);
    EXPECT_EQ(after->process->start_time, source.process->start_time);
    const QmpView qmp = Inspect(*after->process);
    EXPECT_EQ(qmp.run_state, "running");
    EXPECT_FALSE(qmp.background_snapshot) << "a later standby would save a guest that runs on";
    EXPECT_EQ(Entries(source_dir + "/snapshot"), source_snapshot_before);
    const int source_tick = LastTick(source_dir + "/serial.log");
    EXPECT_TRUE(qemu_test::WaitForTick(source_dir + "/serial.log", source_tick + 2, 60s));

    // Each fork (the second on its copy of the first one's snapshot): Running in a process of its own,
    // continuing the guest from the pause, with its own snapshot files and TAP.
    std::set<pid_t> pids{source.process->pid};
    for (const ForkOutcome& outcome : *forked) {
      const Instance& child = outcome.instance;
      SCOPED_TRACE(child.name);
      ASSERT_EQ(child.state, InstanceState::kRunning);
      ASSERT_TRUE(child.process.has_value());
      EXPECT_TRUE(pids.insert(child.process->pid).second);
      EXPECT_EQ(Inspect(*child.process).run_state, "running");
      const std::string child_dir = engine.backend().Path(child.volume);
      EXPECT_TRUE(IsRegularFile(child_dir + "/snapshot/vmstate"));
      EXPECT_TRUE(IsRegularFile(child_dir + "/snapshot/qemu-snapshot.json"));
      for (const std::string& entry : Entries(child_dir + "/snapshot")) {
        EXPECT_EQ(entry.find(".partial"), std::string::npos) << entry;
        EXPECT_EQ(entry.find(".tmp-"), std::string::npos) << entry;
      }
      ASSERT_TRUE(qemu_test::WaitForTick(child_dir + "/serial.log", 1, 60s)) << child_dir;
      const std::vector<int> ticks = qemu_test::Ticks(child_dir + "/serial.log");
      ASSERT_FALSE(ticks.empty());
      EXPECT_GE(ticks.front(), 3) << "the fork continues the source's guest from where it was paused";
      EXPECT_TRUE(qemu_test::WaitForTick(child_dir + "/serial.log", ticks.front() + 2, 60s));
      EXPECT_NE(child.identity.tap_device, after->identity.tap_device);
    }
  });
}

// The second fork's clone fails while the source is paused: no fork is left (the first one's clone is
// removed too), no snapshot was started, and the source runs on in its process, background-snapshot off.
TEST_F(BackgroundForkTest, ACloneFailingInThePauseLeavesNoForkAndTheSourceRunsOn) {
  auto faults = std::make_shared<fe::test::BackendFaults>();
  WithRunningSource(
      "bgfail", /*memory_file=*/false,
      [&](Engine& engine, const Instance& source, const std::string& data_root) {
        const std::set<std::string> volumes_before = Entries(data_root + "/volumes");
        faults->FailNth(fe::test::BackendCall::kClone, 2, Status::NoSpace("injected: no space for the clone"));
        ForkRequest request;
        request.name = "child";
        request.from_running = true;
        request.count = 2;
        request.source_pause = SourcePause::kBackground;
        Result<std::vector<ForkOutcome>> forked = engine.Fork("src", request);
        ASSERT_FALSE(forked.ok());
        EXPECT_EQ(forked.status().code(), ErrorCode::kNoSpace) << forked.status().ToString();
        EXPECT_NE(forked.status().message().find("fork 'child-2' of 'src': clone"), std::string::npos)
            << forked.status().ToString();
        for (const char* name : {"child-1", "child-2"})
          EXPECT_EQ(engine.Get(name).status().code(), ErrorCode::kNotFound);
        EXPECT_EQ(Entries(data_root + "/volumes"), volumes_before);
        Result<Instance> after = engine.Get("src");
        ASSERT_TRUE(after.ok());
        EXPECT_EQ(after->state, InstanceState::kRunning);
        EXPECT_EQ(after->process->pid, source.process->pid);
        const QmpView qmp = Inspect(*after->process);
        EXPECT_EQ(qmp.run_state, "running");
        EXPECT_FALSE(qmp.background_snapshot);
        const std::string source_dir = engine.backend().Path(source.volume);
        const int tick = LastTick(source_dir + "/serial.log");
        EXPECT_TRUE(qemu_test::WaitForTick(source_dir + "/serial.log", tick + 2, 60s));
      },
      faults);
}

TEST_F(BackgroundForkTest, ASourceWhoseRamIsASharedFileIsRefusedAndNothingIsMadeOrPaused) {
  WithRunningSource(
      "bgshared", /*memory_file=*/true, [&](Engine& engine, const Instance& source, const std::string& data_root) {
        const std::set<std::string> volumes_before = Entries(data_root + "/volumes");
        ForkRequest request;
        request.name = "child";
        request.from_running = true;
        request.source_pause = SourcePause::kBackground;
        Result<std::vector<ForkOutcome>> forked = engine.Fork("src", request);
        ASSERT_FALSE(forked.ok());
        EXPECT_EQ(forked.status().code(), ErrorCode::kUnsupported) << forked.status().ToString();
        EXPECT_NE(forked.status().message().find("instance 'src' keeps its guest RAM in a shared memory file"),
                  std::string::npos)
            << forked.status().ToString();
        EXPECT_EQ(engine.Get("child").status().code(), ErrorCode::kNotFound);
        EXPECT_EQ(Entries(data_root + "/volumes"), volumes_before);
        Result<Instance> after = engine.Get("src");
        ASSERT_TRUE(after.ok());
        EXPECT_EQ(after->state, InstanceState::kRunning);
        EXPECT_EQ(after->process->pid, source.process->pid);
        EXPECT_EQ(Inspect(*after->process).run_state, "running");
      });
}

}  // namespace
}  // namespace fe::engine
