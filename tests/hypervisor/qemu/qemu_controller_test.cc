// QemuController and the whole plugin against real QEMUs under TCG: save and restore of an empty
// machine (-machine none, fast), and forks of a running guest (the Debian kernel booting a busybox
// initramfs that prints "tick N" every 200 ms) restored beside their still-running source.
#include "hypervisor/qemu/qemu_controller.h"

#include <sys/stat.h>

#include <filesystem>
#include <iostream>
#include <optional>
#include <set>

#include <gtest/gtest.h>

#include "hypervisor/qemu/qemu.h"
#include "hypervisor/qemu/qemu_config.h"
#include "snapshot/guest_directory.h"
#include "tests/hypervisor/qemu/qemu_process.h"
#include "tests/support/file_util.h"
#include "tests/support/temp_dir.h"

namespace fe::hypervisor::qemu {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::vector<std::string> Names(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename());
  return {names.begin(), names.end()};
}

long Millis(Clock::time_point since) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count());
}

// A started QEMU with its controller.
struct RunningQemu {
  std::optional<test::ChildProcess> process;
  std::unique_ptr<VmController> controller;
  QemuController& qemu() { return static_cast<QemuController&>(*controller); }
};

class QemuControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = test::QemuUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
    Result<fe::test::TempDir> dir = fe::test::TempDir::Create();
    ASSERT_TRUE(dir.ok()) << dir.status().ToString();
    dir_.emplace(std::move(*dir));
  }

  std::string NewInstanceDir(const std::string& name) {
    const std::string path = dir_->Sub(name);
    EXPECT_EQ(::mkdir(path.c_str(), 0755), 0) << path;
    return path;
  }

  // Launches the instance in `dir` through the plugin and connects to it.
  Result<RunningQemu> Start(const std::string& dir, LaunchMode mode) {
    Result<LaunchCommand> command = QemuPlugin().Launch(dir, mode, {});
    if (!command.ok()) return command.status();
    RunningQemu running;
    Result<test::ChildProcess> process = test::ChildProcess::Start(command->argv, dir + "/qemu.log");
    if (!process.ok()) return process.status();
    running.process.emplace(std::move(*process));
    Result<std::unique_ptr<VmController>> controller = QemuPlugin().Connect(command->api_socket, 10s);
    if (!controller.ok()) return controller.status().Annotate(running.process->Log());
    running.controller = std::move(*controller);
    return running;
  }

  std::optional<fe::test::TempDir> dir_;
};

#define FE_START(name, dir, mode)                                         \
  Result<RunningQemu> name##_started = Start(dir, mode);                  \
  ASSERT_TRUE(name##_started.ok()) << name##_started.status().ToString(); \
  RunningQemu& name = *name##_started

TEST_F(QemuControllerTest, SnapshotWritesStateAndDescriptionAndKeepsVmStopped) {
  const std::string instance = NewInstanceDir("vm-1");
  ASSERT_TRUE(WriteConfig(instance, test::MachineNoneConfig(instance)).ok());
  FE_START(vm, instance, LaunchMode::kBoot);

  ASSERT_TRUE(vm.controller->Snapshot(instance + "/snapshot").ok());
  EXPECT_EQ(Names(instance + "/snapshot"), (std::vector<std::string>{kSnapshotInfoFile, kStateFile}));
  Result<std::string> info = fe::test::ReadFile(instance + "/snapshot/" + kSnapshotInfoFile);
  ASSERT_TRUE(info.ok());
  Json description = Json::parse(*info);
  EXPECT_EQ(description["format"], "qemu-migration");
  EXPECT_EQ(description["ignore_shared_memory"], false);
  EXPECT_EQ(description["state_bytes"], fs::file_size(instance + "/snapshot/vmstate"));
  EXPECT_EQ(*vm.qemu().RunState(), "postmigrate");

  ASSERT_TRUE(vm.controller->Resume().ok());
  EXPECT_EQ(*vm.qemu().RunState(), "running");
  ASSERT_TRUE(vm.controller->Shutdown().ok());
  EXPECT_EQ(vm.process->Wait(5s), 0) << vm.process->Log();
}

bool BackgroundSnapshotOn(QemuController& qemu) {
  Result<nlohmann::json> capabilities = qemu.qmp().Execute("query-migrate-capabilities", nullptr, 5s);
  if (!capabilities.ok()) return false;
  for (const nlohmann::json& capability : *capabilities) {
    if (capability.value("capability", "") == "background-snapshot") return capability.value("state", false);
  }
  return false;
}

// A running VM is captured in a stop of QEMU's own, timed from its STOP and RESUME events, and runs on.
TEST_F(QemuControllerTest, BackgroundSnapshotOfARunningVmReportsTheStopOfItsCapture) {
  const std::string instance = NewInstanceDir("vm-bg-running");
  ASSERT_TRUE(WriteConfig(instance, test::MachineNoneConfig(instance)).ok());
  FE_START(vm, instance, LaunchMode::kBoot);

  Result<BackgroundCapture> started = vm.controller->StartBackgroundSnapshot(instance + "/snapshot");
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  ASSERT_TRUE(started->vm_stopped.has_value()) << "QEMU stops a running VM for the capture and says when";
  EXPECT_GE(started->vm_stopped->count(), 0);
  EXPECT_LT(started->vm_stopped->count(), 10'000'000) << "the stop is QEMU's device-state save, not the whole snapshot";
  EXPECT_EQ(*vm.qemu().RunState(), "running");
  Result<std::vector<std::string>> files = vm.controller->FinishBackgroundSnapshot();
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(Names(instance + "/snapshot"), (std::vector<std::string>{kSnapshotInfoFile, kStateFile}));
  ASSERT_TRUE(vm.controller->Shutdown().ok());
}

// A background snapshot ends with the VM running, its files named, and the capability off again.
TEST_F(QemuControllerTest, BackgroundSnapshotOfAPausedVmRunsItAgainAndNamesItsFiles) {
  const std::string instance = NewInstanceDir("vm-bg");
  ASSERT_TRUE(WriteConfig(instance, test::MachineNoneConfig(instance)).ok());
  FE_START(vm, instance, LaunchMode::kBoot);
  ASSERT_TRUE(vm.controller->Pause().ok());

  Result<BackgroundCapture> started = vm.controller->StartBackgroundSnapshot(instance + "/snapshot");
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  EXPECT_EQ(*vm.qemu().RunState(), "running") << "QEMU 7.2 starts the VM again once device state is saved";
  EXPECT_FALSE(started->vm_stopped.has_value()) << "a paused VM is not stopped again for the capture";
  Result<std::vector<std::string>> files = vm.controller->FinishBackgroundSnapshot();
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(*files, (std::vector<std::string>{kStateFile, kSnapshotInfoFile}));
  EXPECT_EQ(Names(instance + "/snapshot"), (std::vector<std::string>{kSnapshotInfoFile, kStateFile}));
  Result<SnapshotInfo> info = ReadSnapshotInfo(instance + "/snapshot");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_FALSE(info->ignore_shared_memory);
  EXPECT_FALSE(BackgroundSnapshotOn(vm.qemu()));
  EXPECT_EQ(*vm.qemu().RunState(), "running");
  EXPECT_EQ(vm.controller->FinishBackgroundSnapshot().status().code(), ErrorCode::kFailedPrecondition)
      << "there is none to finish";
  ASSERT_TRUE(vm.controller->Shutdown().ok());
}

// background-snapshot left on (by a forkd killed during a background fork) must not make a standby's
// snapshot one the VM runs through: Snapshot turns it off and the VM stays stopped.
TEST_F(QemuControllerTest, SnapshotTurnsOffABackgroundSnapshotCapabilityLeftOn) {
  const std::string instance = NewInstanceDir("vm-left");
  ASSERT_TRUE(WriteConfig(instance, test::MachineNoneConfig(instance)).ok());
  FE_START(vm, instance, LaunchMode::kBoot);
  const nlohmann::json on = {
      {"capabilities", nlohmann::json::array({{{"capability", "background-snapshot"}, {"state", true}}})}};
  ASSERT_TRUE(vm.qemu().qmp().Execute("migrate-set-capabilities", on, 5s).ok());
  ASSERT_TRUE(BackgroundSnapshotOn(vm.qemu()));

  ASSERT_TRUE(vm.controller->Snapshot(instance + "/snapshot").ok());
  EXPECT_FALSE(BackgroundSnapshotOn(vm.qemu()));
  EXPECT_EQ(*vm.qemu().RunState(), "postmigrate");
  ASSERT_TRUE(vm.controller->Shutdown().ok());
}

TEST_F(QemuControllerTest, RestoreLoadsSnapshotIntoQemuStartedForIt) {
  const std::string source = NewInstanceDir("vm-1");
  ASSERT_TRUE(WriteConfig(source, test::MachineNoneConfig(source)).ok());
  FE_START(vm, source, LaunchMode::kBoot);
  ASSERT_TRUE(vm.controller->Pause().ok());
  ASSERT_TRUE(vm.controller->Snapshot(source + "/snapshot").ok());
  ASSERT_TRUE(vm.controller->Shutdown().ok());

  const std::string target = NewInstanceDir("vm-2");
  ASSERT_TRUE(WriteConfig(target, test::MachineNoneConfig(target)).ok());
  FE_START(fork, target, LaunchMode::kRestore);
  EXPECT_EQ(*fork.qemu().RunState(), "inmigrate");
  Status restored = fork.controller->Restore(source + "/snapshot", NetworkIdentity{}, {});
  ASSERT_TRUE(restored.ok()) << restored.ToString() << fork.process->Log();
  EXPECT_EQ(*fork.qemu().RunState(), "running");
  ASSERT_TRUE(fork.controller->Shutdown().ok());
  EXPECT_EQ(fork.process->Wait(5s), 0) << fork.process->Log();
}

TEST_F(QemuControllerTest, RestoreRefusesQemuNotWaitingForIncomingState) {
  const std::string instance = NewInstanceDir("vm-1");
  ASSERT_TRUE(WriteConfig(instance, test::MachineNoneConfig(instance)).ok());
  FE_START(vm, instance, LaunchMode::kBoot);
  ASSERT_TRUE(vm.controller->Snapshot(instance + "/snapshot").ok());
  Status restored = vm.controller->Restore(instance + "/snapshot", NetworkIdentity{}, {});
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(restored.message().find("-incoming defer"), std::string::npos) << restored.message();
}

TEST_F(QemuControllerTest, RestoreWithoutStateFileFailsInsteadOfWaitingForever) {
  const std::string instance = NewInstanceDir("vm-1");
  ASSERT_TRUE(WriteConfig(instance, test::MachineNoneConfig(instance)).ok());
  FE_START(vm, instance, LaunchMode::kRestore);
  const std::string snapshot = NewInstanceDir("snapshot");

  Status restored = vm.controller->Restore(snapshot, NetworkIdentity{}, {});
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.code(), ErrorCode::kNotFound);
  EXPECT_NE(restored.message().find(snapshot + "/" + kSnapshotInfoFile), std::string::npos) << restored.message();

  ASSERT_TRUE(fe::test::WriteFile(snapshot + "/" + kSnapshotInfoFile,
                                  R"({"format": "qemu-migration", "state_file": "vmstate"})")
                  .ok());
  restored = vm.controller->Restore(snapshot, NetworkIdentity{}, {});
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.code(), ErrorCode::kNotFound);
  EXPECT_NE(restored.message().find(snapshot + "/vmstate"), std::string::npos) << restored.message();
  EXPECT_EQ(*vm.qemu().RunState(), "inmigrate");  // still waiting, still usable
}

// Copies an instance directory as the storage layer would, without the runtime files (sockets, logs).
void CloneInstance(const std::string& from, const std::string& to) {
  for (const auto& entry : fs::recursive_directory_iterator(from)) {
    const std::string relative = fs::relative(entry.path(), from);
    if (entry.is_directory()) {
      fs::create_directories(to + "/" + relative);
    } else if (entry.is_regular_file() && relative != "serial.log" && relative != "qemu.log") {
      fs::copy_file(entry.path(), to + "/" + relative);
    }
  }
}

void WriteManifest(const std::string& dir, bool shared_memory) {
  snapshot::Manifest manifest;
  manifest.hypervisor = "qemu";
  manifest.snapshot_dir = "snapshot";
  manifest.files = {{kConfigFile, snapshot::FileRole::kConfig},
                    {"initrd.cpio", snapshot::FileRole::kPayload},
                    {"disk.raw", snapshot::FileRole::kDisk},
                    {"serial.log", snapshot::FileRole::kRuntime},
                    {"qmp.sock", snapshot::FileRole::kRuntime},
                    {"identity.sock", snapshot::FileRole::kRuntime},
                    {"qemu.log", snapshot::FileRole::kRuntime},
                    {"snapshot/vmstate", snapshot::FileRole::kDeviceState},
                    {"snapshot/qemu-snapshot.json", snapshot::FileRole::kDeviceState}};
  if (shared_memory) manifest.files.push_back({"mem.bin", snapshot::FileRole::kMemory});
  ASSERT_TRUE(snapshot::WriteManifest(dir, manifest).ok());
}

// The fork path of a running source: snapshot it, clone its directory while it is stopped, let it
// run on, prepare the clone, restore the fork beside it. Both must then run, the fork from where the
// source stopped (its ticks go on, it does not boot again).
void ForkRunningGuest(const std::string& source, const std::string& target,
                      const std::function<Result<RunningQemu>(const std::string&, LaunchMode)>& start,
                      bool shared_memory) {
  const Clock::time_point begin = Clock::now();
  Result<RunningQemu> started = start(source, LaunchMode::kBoot);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  RunningQemu& vm = *started;
  ASSERT_TRUE(test::WaitForTick(source + "/serial.log", 2, 60s)) << "the guest never ticked\n" << vm.process->Log();
  const long booted_ms = Millis(begin);

  Clock::time_point step = Clock::now();
  WriteManifest(source, shared_memory);
  ASSERT_TRUE(vm.controller->Snapshot(source + "/snapshot").ok());
  const long snapshot_ms = Millis(step);
  const std::vector<int> source_ticks = test::Ticks(source + "/serial.log");
  ASSERT_FALSE(source_ticks.empty());
  const int last_tick = source_ticks.back();
  const uintmax_t state_bytes = fs::file_size(source + "/snapshot/vmstate");
  if (shared_memory) {
    EXPECT_LT(state_bytes, 4u << 20) << "RAM should stay in mem.bin";
  } else {
    EXPECT_GT(state_bytes, 4u << 20) << "RAM should be in the state";
  }

  ::mkdir(target.c_str(), 0755);
  CloneInstance(source, target);  // while the source is stopped: mem.bin is consistent with vmstate
  ASSERT_TRUE(vm.controller->Resume().ok());

  step = Clock::now();
  ForkSpec spec;
  spec.source_dir = source;
  spec.target_dir = target;
  spec.target_identity.vsock_cid = 4;
  spec.from_snapshot = true;
  Result<PreparedFork> prepared = QemuPlugin().PrepareFork(spec);
  ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
  EXPECT_EQ(prepared->restore.snapshot_dir, target + "/snapshot");
  Result<Config> fork_config = ReadConfig(target);
  ASSERT_TRUE(fork_config.ok());
  EXPECT_EQ(fork_config->qmp_socket, target + "/qmp.sock");
  EXPECT_EQ(fork_config->drives[0].file, target + "/disk.raw");
  EXPECT_EQ(fork_config->chardevs[1].path, target + "/identity.sock");

  Result<RunningQemu> fork_started = start(target, LaunchMode::kRestore);
  ASSERT_TRUE(fork_started.ok()) << fork_started.status().ToString();
  RunningQemu& fork = *fork_started;
  Status restored = fork.controller->Restore(prepared->restore.snapshot_dir, prepared->restore.identity, {});
  ASSERT_TRUE(restored.ok()) << restored.ToString() << fork.process->Log();
  const long restore_ms = Millis(step);
  EXPECT_EQ(*fork.qemu().RunState(), "running");
  EXPECT_EQ(*vm.qemu().RunState(), "running");

  ASSERT_TRUE(test::WaitForTick(target + "/serial.log", last_tick + 3, 20s)) << fork.process->Log();
  ASSERT_TRUE(test::WaitForTick(source + "/serial.log", last_tick + 3, 20s)) << vm.process->Log();
  const std::vector<int> fork_ticks = test::Ticks(target + "/serial.log");
  ASSERT_FALSE(fork_ticks.empty());
  EXPECT_GE(fork_ticks.front(), last_tick + 1) << "the fork booted again instead of continuing";
  EXPECT_LE(fork_ticks.front(), last_tick + 2) << "the fork did not continue where the source stopped";

  ASSERT_TRUE(fork.controller->Shutdown().ok());
  ASSERT_TRUE(vm.controller->Shutdown().ok());
  EXPECT_EQ(fork.process->Wait(5s), 0) << fork.process->Log();
  EXPECT_EQ(vm.process->Wait(5s), 0) << vm.process->Log();
  std::cout << "[ timing   ] boot to tick 2 " << booted_ms << " ms, snapshot " << snapshot_ms << " ms (" << state_bytes
            << " bytes), prepare+launch+restore " << restore_ms << " ms, source stopped at tick " << last_tick
            << ", fork resumed at tick " << fork_ticks.front() << "\n";
}

TEST_F(QemuControllerTest, ForkOfRunningGuestContinuesBesideSource) {
  if (std::string why = test::GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  const std::string source = NewInstanceDir("vm-1");
  Result<Config> config = test::MakeTickerInstance(source, 128);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_TRUE(WriteConfig(source, *config).ok());
  ForkRunningGuest(
      source, dir_->Sub("vm-2"), [this](const std::string& dir, LaunchMode mode) { return Start(dir, mode); },
      /*shared_memory=*/false);
}

TEST_F(QemuControllerTest, ForkWithRamInSharedFileSavesOnlyDeviceState) {
  if (std::string why = test::GuestUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  const std::string source = NewInstanceDir("vm-1");
  Result<Config> config = test::MakeTickerInstance(source, 128);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  config->memory_file = source + "/mem.bin";
  ASSERT_TRUE(WriteConfig(source, *config).ok());
  ForkRunningGuest(
      source, dir_->Sub("vm-2"), [this](const std::string& dir, LaunchMode mode) { return Start(dir, mode); },
      /*shared_memory=*/true);
  Result<std::string> info = fe::test::ReadFile(dir_->Sub("vm-2/snapshot/") + kSnapshotInfoFile);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(Json::parse(*info)["ignore_shared_memory"], true);
}

}  // namespace
}  // namespace fe::hypervisor::qemu
