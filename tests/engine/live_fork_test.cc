// The live path of a from_running fork (engine/live_fork.cc) with real QEMUs under TCG: the ticker
// guest (tests/hypervisor/qemu/qemu_process.h: prints "tick N" on its serial log) with its RAM in a
// shared file (128 MiB), on a reflink XFS scratch filesystem, its NIC on a TAP the engine makes and bridges.
// Everything runs on a thread inside a network namespace of the test's own, so the TAPs and the
// QEMUs (which inherit the namespace) touch nothing of the host's network.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>
#include <thread>

#include "base/process.h"
#include "engine/engine.h"
#include "engine/network/tap_device.h"
#include "engine/vm/vm_runner.h"
#include "hypervisor/qemu/qemu_config.h"
#include "hypervisor/qemu/qemu_controller.h"
#include "tests/hypervisor/qemu/qemu_process.h"
#include "tests/support/network_namespace.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"

namespace fe::engine {
namespace {

using namespace std::chrono_literals;
namespace qemu_test = hypervisor::qemu::test;

constexpr char kBridge[] = "febr-live";

std::string RunState(const vm::ProcessRecord& record) {
  Result<std::unique_ptr<hypervisor::VmController>> controller =
      hypervisor::qemu::ConnectController(record.api_socket, 5s);
  if (!controller.ok()) return controller.status().ToString();
  Result<std::string> state = static_cast<hypervisor::qemu::QemuController&>(**controller).RunState();
  return state.ok() ? *state : state.status().ToString();
}

// The files the process maps (/proc/<pid>/maps), one path per line.
std::string MappedFiles(pid_t pid) {
  Result<std::string> maps = fe::test::ReadFile("/proc/" + std::to_string(pid) + "/maps");
  return maps.ok() ? *maps : maps.status().ToString();
}

int LastTick(const std::string& serial_log) {
  std::vector<int> ticks = qemu_test::Ticks(serial_log);
  return ticks.empty() ? -1 : ticks.back();
}

// The ticker guest in `dir` (created) with its RAM in mem.bin and a NIC; its identity port (with no
// agent behind it in this guest) only when `identity_port`.
Status MakeTemplate(const std::string& dir, bool identity_port) {
  if (::mkdir(dir.c_str(), 0755) != 0) return Status::FromErrno(errno, "mkdir", dir);
  Result<hypervisor::qemu::Config> config = qemu_test::MakeTickerInstance(dir, 128);
  if (!config.ok()) return config.status();
  config->memory_file = dir + "/mem.bin";
  if (!identity_port) {
    std::erase_if(config->chardevs, [](const hypervisor::qemu::Chardev& c) { return !c.virtio_port.empty(); });
  }
  config->nics = {{"net0", "fetemplate", "02:fe:00:00:00:01", "virtio-net-pci", hypervisor::qemu::Json::object()}};
  return hypervisor::qemu::WriteConfig(dir, *config);
}

// A short directory on the reflink XFS scratch root (QEMU's socket paths must fit in sun_path), or
// why there is none.
fe::test::ScratchResult ShortScratchDir(const std::string& name) {
  fe::test::ScratchResult scratch = fe::test::Scratch::Root(fe::test::ScratchFs::kXfs);
  if (!scratch.skip.empty() || !scratch.status.ok()) return scratch;
  scratch.path += "/" + name + "-" + std::to_string(::getpid());
  if (::mkdir(scratch.path.c_str(), 0755) != 0) scratch.status = Status::FromErrno(errno, "mkdir", scratch.path);
  return scratch;
}

class LiveForkTest : public fe::test::ScratchTest {};

TEST_F(LiveForkTest, ForkOfARunningQemuPausesTheSourceAndRunsTheForkFromItsOwnRamFile) {
  if (std::string why = qemu_test::GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  if (std::string why = network::TapUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  fe::test::ScratchResult scratch = ShortScratchDir("live");
  if (!scratch.skip.empty()) GTEST_SKIP() << scratch.skip;
  ASSERT_TRUE(scratch.status.ok()) << scratch.status.ToString();

  // The template: the ticker guest, RAM in mem.bin, a NIC, no identity port (it has no agent).
  const std::string template_dir = scratch.path + "/template";
  Status made = MakeTemplate(template_dir, /*identity_port=*/false);
  ASSERT_TRUE(made.ok()) << made.ToString();

  std::string skip = fe::test::RunInNewNetworkNamespace([&] {
    ASSERT_TRUE(RunProcessChecked({"ip", "link", "add", kBridge, "type", "bridge"}).ok());
    EngineConfig engine_config;
    engine_config.data_root = scratch.path + "/root";
    engine_config.manage_taps = true;
    engine_config.bridge = kBridge;
    engine_config.hypervisor_timeout = 30s;
    Result<std::unique_ptr<Engine>> opened = Engine::Open(engine_config);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    Engine& engine = **opened;
    if (!engine.backend().Capabilities().shares_data) {
      GTEST_SKIP() << "backend " << engine.backend().Name() << " does not share data";
    }

    CreateRequest create;
    create.name = "src";
    create.hypervisor = "qemu";
    create.import_dir = template_dir;
    Result<Instance> created = engine.Create(create);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    // Whatever a failed assertion leaves running is deleted (stopped) on the way out.
    struct Cleanup {
      Engine& engine;
      ~Cleanup() {
        for (const char* name : {"child", "src"}) (void)engine.Delete(name);
      }
    } cleanup{engine};
    Result<Instance> source = engine.Start("src");
    ASSERT_TRUE(source.ok()) << source.status().ToString();
    const std::string source_dir = engine.backend().Path(source->volume);
    auto logs = [&](const std::string& dir, const std::string& id) {
      Result<std::string> serial = fe::test::ReadFile(dir + "/serial.log");
      Result<std::string> log = fe::test::ReadFile(engine_config.data_root + "/instances/" + id + "/hypervisor.log");
      return "serial: " + (serial.ok() ? *serial : serial.status().ToString()) +
             "\nhypervisor: " + (log.ok() ? *log : log.status().ToString());
    };
    ASSERT_TRUE(qemu_test::WaitForTick(source_dir + "/serial.log", 3, 60s)) << logs(source_dir, source->id);

    ForkRequest request;
    request.name = "child";
    request.from_running = true;
    Result<std::vector<ForkOutcome>> forked = engine.Fork("src", request);
    ASSERT_TRUE(forked.ok()) << forked.status().ToString();
    ASSERT_EQ(forked->size(), 1u);
    const ForkOutcome& outcome = (*forked)[0];
    EXPECT_TRUE(outcome.live);
    EXPECT_GT(outcome.phases.source_pause_us, 0);
    EXPECT_EQ(outcome.phases.source_standby_us, 0);
    std::printf("live fork: pause %lld us, clone %lld us, rewrite %lld us, restore %lld us, total %lld us\n",
                static_cast<long long>(outcome.phases.source_pause_us), static_cast<long long>(outcome.phases.clone_us),
                static_cast<long long>(outcome.phases.rewrite_us), static_cast<long long>(outcome.phases.restore_us),
                static_cast<long long>(outcome.phases.total_us));

    // The source: the same process, Running, still ticking.
    Result<Instance> after = engine.Get("src");
    ASSERT_TRUE(after.ok());
    ASSERT_EQ(after->state, InstanceState::kRunning);
    ASSERT_TRUE(after->process.has_value());
    EXPECT_EQ(after->process->pid, source->process->pid);
    EXPECT_EQ(after->process->start_time, source->process->start_time);
    EXPECT_TRUE(vm::VmProcessAlive(*after->process));
    EXPECT_EQ(RunState(*after->process), "running");
    const int source_tick = LastTick(source_dir + "/serial.log");
    EXPECT_TRUE(qemu_test::WaitForTick(source_dir + "/serial.log", source_tick + 2, 60s));

    // The fork: Running in a process of its own, on its own RAM file, TAP and serial log, continuing
    // the guest from where it was paused.
    const Instance& child = outcome.instance;
    ASSERT_EQ(child.state, InstanceState::kRunning);
    ASSERT_TRUE(child.process.has_value());
    EXPECT_NE(child.process->pid, source->process->pid);
    EXPECT_EQ(RunState(*child.process), "running");
    const std::string child_dir = engine.backend().Path(child.volume);
    const std::string child_maps = MappedFiles(child.process->pid);
    EXPECT_NE(child_maps.find(child_dir + "/mem.bin"), std::string::npos) << child_maps;
    EXPECT_EQ(child_maps.find(source_dir + "/"), std::string::npos)
        << "the fork maps a file of the source: " << child_maps;
    EXPECT_NE(MappedFiles(source->process->pid).find(source_dir + "/mem.bin"), std::string::npos);
    ASSERT_TRUE(qemu_test::WaitForTick(child_dir + "/serial.log", 1, 60s)) << child_dir;
    const std::vector<int> child_ticks = qemu_test::Ticks(child_dir + "/serial.log");
    ASSERT_FALSE(child_ticks.empty());
    EXPECT_GE(child_ticks.front(), 3) << "the fork continues the source's guest from where it was paused";
    EXPECT_TRUE(qemu_test::WaitForTick(child_dir + "/serial.log", child_ticks.front() + 2, 60s));

    EXPECT_NE(child.identity.tap_device, after->identity.tap_device);
    for (const std::string& tap : {child.identity.tap_device, after->identity.tap_device}) {
      Result<ProcessResult> master = RunProcess({"ip", "-o", "link", "show", tap});
      ASSERT_TRUE(master.ok());
      EXPECT_NE(master->output.find(std::string("master ") + kBridge), std::string::npos) << master->output;
    }

    // Deleting both ends both processes and removes both TAPs.
    ASSERT_TRUE(engine.Delete("child").ok());
    ASSERT_TRUE(engine.Delete("src").ok());
    EXPECT_FALSE(vm::VmProcessAlive(*child.process));
    EXPECT_FALSE(vm::VmProcessAlive(*after->process));
    EXPECT_FALSE(network::NetworkDeviceExists(child.identity.tap_device));
    EXPECT_FALSE(network::NetworkDeviceExists(after->identity.tap_device));
  });
  if (!skip.empty()) GTEST_SKIP() << skip;
}

// The ticker guest has the identity port but no agent: the fork's restore never gets its ack, so the
// fork is rolled back (no instance, TAP or process of it left) and the source runs on untouched. While
// it waited for the ack, the fork's guest (still claiming the source's MAC and IP) was never on the
// bridge.
TEST_F(LiveForkTest, ForkWhoseGuestNeverAcknowledgesItsIdentityIsRolledBackAndTheSourceRunsOn) {
  if (std::string why = qemu_test::GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  if (std::string why = network::TapUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  fe::test::ScratchResult scratch = ShortScratchDir("noack");
  if (!scratch.skip.empty()) GTEST_SKIP() << scratch.skip;
  ASSERT_TRUE(scratch.status.ok()) << scratch.status.ToString();
  const std::string template_dir = scratch.path + "/template";
  Status made = MakeTemplate(template_dir, /*identity_port=*/true);
  ASSERT_TRUE(made.ok()) << made.ToString();

  std::string skip = fe::test::RunInNewNetworkNamespace([&] {
    ASSERT_TRUE(RunProcessChecked({"ip", "link", "add", kBridge, "type", "bridge"}).ok());
    EngineConfig engine_config;
    engine_config.data_root = scratch.path + "/root";
    engine_config.manage_taps = true;
    engine_config.bridge = kBridge;
    engine_config.hypervisor_timeout = 30s;
    engine_config.identity_timeout = 2s;
    Result<std::unique_ptr<Engine>> opened = Engine::Open(engine_config);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    Engine& engine = **opened;
    struct Cleanup {
      Engine& engine;
      ~Cleanup() { (void)engine.Delete("src"); }
    } cleanup{engine};
    CreateRequest create;
    create.name = "src";
    create.hypervisor = "qemu";
    create.import_dir = template_dir;
    ASSERT_TRUE(engine.Create(create).ok());
    Result<Instance> source = engine.Start("src");
    ASSERT_TRUE(source.ok()) << source.status().ToString();
    auto volumes = [&] {
      std::set<std::string> names;
      for (const auto& item : std::filesystem::directory_iterator(engine_config.data_root + "/volumes")) {
        names.insert(item.path().filename().string());
      }
      return names;
    };
    const std::set<std::string> volumes_before = volumes();

    // Watches the fork's TAP (its lease is the next address) while the fork waits for the ack.
    const std::string fork_tap = "fe0a640003";
    std::atomic<bool> forking{true};
    int tap_seen = 0, tap_bridged = 0;
    std::thread watcher([&] {
      while (forking) {
        Result<ProcessResult> link = RunProcess({"ip", "-o", "link", "show", fork_tap});
        if (link.ok() && link->exit_code == 0) {
          ++tap_seen;
          if (link->output.find(std::string("master ") + kBridge) != std::string::npos) ++tap_bridged;
        }
        std::this_thread::sleep_for(50ms);
      }
    });
    ForkRequest request;
    request.name = "child";
    request.from_running = true;
    Result<std::vector<ForkOutcome>> forked = engine.Fork("src", request);
    forking = false;
    watcher.join();
    EXPECT_GT(tap_seen, 0) << "the fork's TAP " << fork_tap << " was never seen";
    EXPECT_EQ(tap_bridged, 0) << "the fork's TAP was a port of the bridge before its guest had its own identity";
    ASSERT_FALSE(forked.ok());
    EXPECT_EQ(forked.status().code(), ErrorCode::kTimedOut) << forked.status().ToString();
    EXPECT_NE(forked.status().message().find("identity handoff"), std::string::npos) << forked.status().ToString();
    EXPECT_NE(forked.status().message().find("fork 'child' of 'src': restore"), std::string::npos)
        << forked.status().ToString();

    EXPECT_EQ(engine.Get("child").status().code(), ErrorCode::kNotFound);
    EXPECT_EQ(volumes(), volumes_before) << "the fork's volume is gone";
    EXPECT_FALSE(network::NetworkDeviceExists("fe0a640003")) << "the fork's TAP is gone";
    Result<Instance> after = engine.Get("src");
    ASSERT_TRUE(after.ok());
    ASSERT_EQ(after->state, InstanceState::kRunning);
    EXPECT_EQ(after->process->pid, source->process->pid);
    EXPECT_EQ(after->process->start_time, source->process->start_time);
    EXPECT_EQ(RunState(*after->process), "running");
    EXPECT_TRUE(network::NetworkDeviceExists(after->identity.tap_device));
    Result<ProcessResult> source_link = RunProcess({"ip", "-o", "link", "show", after->identity.tap_device});
    ASSERT_TRUE(source_link.ok());
    EXPECT_NE(source_link->output.find(std::string("master ") + kBridge), std::string::npos) << source_link->output;
  });
  if (!skip.empty()) GTEST_SKIP() << skip;
}

}  // namespace
}  // namespace fe::engine
