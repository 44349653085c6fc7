// Shared by the engine tests: a real-format cloud-hypervisor guest directory (the plugin's fixtures,
// with their paths moved to where the directory is), a test plugin that wraps the real
// cloud-hypervisor plugin (its PrepareFork is the real one, optionally failing on the Nth call; its
// "hypervisor" is a small python3 process serving a Unix socket, so Start/Stop/Standby/Restore run
// real processes through engine/vm_runner), and an engine fixture on a scratch filesystem.
#pragma once

#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "engine/engine.h"
#include "tests/support/fault_injecting_backend.h"
#include "hypervisor/cloud_hypervisor/cloud_hypervisor.h"
#include "snapshot/guest_directory.h"
#include "tests/support/file_util.h"
#include "tests/support/scratch.h"

namespace fe::engine::test {

using fe::test::ReadFile;
using fe::test::WriteFile;

inline std::string FixtureText(const std::string& name) {
  Result<std::string> text = ReadFile(std::string(FE_CH_FIXTURES) + "/" + name);
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  return text.ok() ? *text : std::string();
}

// The fixtures were written for a source in /data/vm-1 (and name /data/vm-10/disk, a read-only disk
// outside it, which stays as it is).
inline std::string MoveFixturePaths(std::string text, const std::string& dir) {
  auto replace_all = [&](const std::string& from, const std::string& to) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
      text.replace(at, from.size(), to);
    }
  };
  replace_all("/data/vm-10", "\x01");
  replace_all("/data/vm-1", dir);
  replace_all("\x01", "/data/vm-10");
  return text;
}

// Writes the snapshot cloud-hypervisor's vm.snapshot would leave in `snapshot_dir` of `guest_dir`.
inline Status WriteChSnapshot(const std::string& guest_dir, const std::string& snapshot_dir) {
  if (::mkdir(snapshot_dir.c_str(), 0755) != 0 && errno != EEXIST)
    return Status::FromErrno(errno, "mkdir", snapshot_dir);
  FE_RETURN_IF_ERROR(
      WriteFile(snapshot_dir + "/config.json", MoveFixturePaths(FixtureText("snapshot_config.json"), guest_dir)));
  FE_RETURN_IF_ERROR(
      WriteFile(snapshot_dir + "/state.json",
                R"({"snapshots":{"_disk0":{"snapshot_data":{"disk_path":")" + guest_dir + R"(/rootfs.raw"}}}})"));
  return fe::test::WritePatternFile(snapshot_dir + "/memory-ranges", 4 * fe::test::kMiB, 7);
}

// A standby cloud-hypervisor guest directory at `dir` (created): boot config, snapshot, a sparse
// disk, a kernel, a memory-zone file, a log and a manifest naming them.
inline Status MakeChGuestDir(const std::string& dir) {
  for (const std::string& sub : {dir, dir + "/logs", dir + "/memory"}) {
    if (::mkdir(sub.c_str(), 0755) != 0) return Status::FromErrno(errno, "mkdir", sub);
  }
  FE_RETURN_IF_ERROR(WriteFile(dir + "/config.json", MoveFixturePaths(FixtureText("boot_config.json"), dir)));
  FE_RETURN_IF_ERROR(WriteChSnapshot(dir, dir + "/snapshot"));
  FE_RETURN_IF_ERROR(fe::test::MakeSparseFile(dir + "/rootfs.raw", 64 * fe::test::kMiB,
                                              fe::test::SpreadRanges(64 * fe::test::kMiB, 4, fe::test::kMiB), 3));
  FE_RETURN_IF_ERROR(fe::test::WritePatternFile(dir + "/vmlinux", 256 * fe::test::kKiB, 5));
  FE_RETURN_IF_ERROR(fe::test::WritePatternFile(dir + "/memory/mem0", fe::test::kMiB, 9));
  FE_RETURN_IF_ERROR(WriteFile(dir + "/logs/serial.log", "[    0.000000] Linux version\n"));
  snapshot::Manifest manifest;
  manifest.hypervisor = "cloud-hypervisor";
  manifest.snapshot_dir = "snapshot";
  using snapshot::FileRole;
  manifest.files = {{"rootfs.raw", FileRole::kDisk},
                    {"vmlinux", FileRole::kPayload},
                    {"memory/mem0", FileRole::kMemory},
                    {"config.json", FileRole::kConfig},
                    {"snapshot/config.json", FileRole::kConfig},
                    {"snapshot/state.json", FileRole::kDeviceState},
                    {"snapshot/memory-ranges", FileRole::kMemory},
                    {"api.sock", FileRole::kRuntime},
                    {"logs", FileRole::kRuntime}};
  return snapshot::WriteManifest(dir, manifest);
}

// The stand-in hypervisor: serves a Unix socket and exits when a client sends "quit".
inline constexpr const char* kFakeHypervisorScript = R"(
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(16)
while True:
    c, _ = s.accept()
    d = c.recv(16)
    c.close()
    if d == b"quit":
        os.unlink(sys.argv[1])
        sys.exit(0)
)";

class FakeController final : public hypervisor::VmController {
 public:
  FakeController(std::string socket, std::function<Status()> on_restore,
                 std::function<void(const hypervisor::MemorySource&)> on_restore_memory = nullptr,
                 std::function<void(std::string_view)> on_call = nullptr)
      : socket_(std::move(socket)),
        on_restore_(std::move(on_restore)),
        on_restore_memory_(std::move(on_restore_memory)),
        on_call_(std::move(on_call)) {}
  Status Pause() override {
    Note("pause");
    return Status::Ok();
  }
  Status Resume() override {
    Note("resume");
    return Status::Ok();
  }
  Status Snapshot(const std::string& snapshot_dir) override {
    Note("snapshot");
    std::string guest_dir = snapshot_dir.substr(0, snapshot_dir.find_last_of('/'));
    return WriteChSnapshot(guest_dir, snapshot_dir);
  }
  Status Restore(const std::string&, const hypervisor::NetworkIdentity&,
                 const hypervisor::MemorySource& memory) override {
    if (on_restore_memory_) on_restore_memory_(memory);
    return on_restore_ ? on_restore_() : Status::Ok();
  }
  Status Shutdown() override {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Status::FromErrno(errno, "socket", socket_);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, socket_.c_str(), socket_.size() + 1);
    Status status;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || ::write(fd, "quit", 4) != 4) {
      status = Status::FromErrno(errno, "quit", socket_);
    }
    ::close(fd);
    return status;
  }

 private:
  std::string socket_;
  std::function<Status()> on_restore_;
  std::function<void(const hypervisor::MemorySource&)> on_restore_memory_;
  std::function<void(std::string_view)> on_call_;

  void Note(std::string_view call) {
    if (on_call_) on_call_(call);
  }
};

// The real cloud-hypervisor PrepareFork (optionally failing on call number `fail_prepare_on`), a
// python stand-in for the process, and a kind of its own so the engine finds it by name.
class TestPlugin final : public hypervisor::Plugin {
 public:
  std::string_view Kind() const override { return "cloud-hypervisor"; }
  hypervisor::PluginCapabilities Capabilities() const override {
    return capabilities ? *capabilities : hypervisor::cloud_hypervisor::CloudHypervisorPlugin().Capabilities();
  }
  Status CheckGuestDirectory(const std::string& dir, bool standby) const override {
    return hypervisor::cloud_hypervisor::CloudHypervisorPlugin().CheckGuestDirectory(dir, standby);
  }
  Result<hypervisor::PreparedFork> PrepareFork(const hypervisor::ForkSpec& spec) const override {
    int call = ++prepare_calls;
    if (call == fail_prepare_on || fail_every_prepare) {
      return Status::Io("injected PrepareFork failure (call " + std::to_string(call) + ")");
    }
    return hypervisor::cloud_hypervisor::CloudHypervisorPlugin().PrepareFork(spec);
  }
  // With `snapshot_memory_file` set (a test of shared memory): the guest directory's snapshot memory
  // file the plugin names, and the shared_memory capability.
  Result<std::string> SnapshotMemoryFile(const std::string& instance_dir) const override {
    if (snapshot_memory_file) return instance_dir + "/" + snapshot_memory_file;
    return hypervisor::cloud_hypervisor::CloudHypervisorPlugin().SnapshotMemoryFile(instance_dir);
  }
  Result<hypervisor::LaunchCommand> Launch(const std::string& instance_dir, hypervisor::LaunchMode,
                                           const hypervisor::MemorySource&) const override {
    hypervisor::LaunchCommand command;
    // Guest directories on scratch filesystems are too deep for sun_path: the socket lives in /tmp.
    command.api_socket = "/tmp/fe-engine-test-" + std::to_string(std::hash<std::string>{}(instance_dir)) + ".sock";
    command.argv = {"python3", "-c", kFakeHypervisorScript, command.api_socket};
    return command;
  }
  Result<std::unique_ptr<hypervisor::VmController>> Connect(const std::string& api_socket,
                                                            std::chrono::milliseconds) const override {
    return std::unique_ptr<hypervisor::VmController>(new FakeController(
        api_socket, fail_restore,
        [this](const hypervisor::MemorySource& memory) {
          std::lock_guard lock(restores_mutex);
          restored_memory.push_back(memory.shared_file);
        },
        [this](std::string_view call) { NoteCall(call); }));
  }
  // With `running_memory_file` set (a test of the live path, with the live_snapshot capability): the
  // file, relative to the guest directory, that holds a running VM's RAM.
  bool CanLiveFork(const std::string&) const override { return running_memory_file != nullptr; }
  Result<hypervisor::MemoryFile> RunningMemoryFile(const std::string& guest_dir) const override {
    if (running_memory_file == nullptr) return Plugin::RunningMemoryFile(guest_dir);
    return hypervisor::MemoryFile{guest_dir + "/" + running_memory_file, fe::test::kMiB};
  }
  // What the controllers were asked ("pause", "snapshot", "resume") and what tests note beside it, in order.
  void NoteCall(std::string_view call) const {
    std::lock_guard lock(calls_mutex);
    calls.emplace_back(call);
  }
  std::vector<std::string> Calls() const {
    std::lock_guard lock(calls_mutex);
    return calls;
  }

  mutable std::atomic<int> prepare_calls{0};
  int fail_prepare_on = 0;  // 0: never
  std::atomic<bool> fail_every_prepare{false};
  std::optional<hypervisor::PluginCapabilities> capabilities;
  std::function<Status()> fail_restore;
  const char* snapshot_memory_file = nullptr;  // relative to the guest directory
  const char* running_memory_file = nullptr;   // relative to the guest directory
  mutable std::mutex restores_mutex;
  mutable std::vector<std::string> restored_memory;  // each restore's MemorySource::shared_file
  mutable std::mutex calls_mutex;
  mutable std::vector<std::string> calls;
};

// An engine on a fresh data root on `fs`, with the test plugin as "cloud-hypervisor" and a
// template guest directory on the same filesystem to import.
class EngineFixture {
 public:
  Status Init(const std::string& scratch) {
    scratch_ = scratch;
    template_dir_ = scratch + "/template";
    FE_RETURN_IF_ERROR(MakeChGuestDir(template_dir_));
    return Reopen();
  }
  Status Reopen() {
    Close();
    return Open();
  }
  // Closing and opening again is what a daemon restart (or a crash, for what is on disk) does.
  void Close() { engine_.reset(); }
  Status Open() {
    EngineConfig config;
    config.data_root = scratch_ + "/root";
    config.lock_timeout = std::chrono::milliseconds(60'000);
    config.hypervisor_timeout = std::chrono::milliseconds(5'000);
    // TAP names derive from addresses: parallel tests would share them, unless in a namespace of their own.
    config.manage_taps = manage_taps;
    EngineDependencies dependencies;
    dependencies.plugins = [this](std::string_view kind) -> Result<const hypervisor::Plugin*> {
      if (kind == "cloud-hypervisor") return static_cast<const hypervisor::Plugin*>(&plugin_);
      return Status::Unsupported("hypervisor '" + std::string(kind) + "' is not supported");
    };
    if (backend_faults) {
      // The real backend the engine would open, behind the fault-injecting wrapper.
      if (::mkdir(config.data_root.c_str(), 0700) != 0 && errno != EEXIST) {
        return Status::FromErrno(errno, "mkdir", config.data_root);
      }
      Result<std::unique_ptr<storage::Backend>> real =
          storage::registry::OpenBackend(config.data_root + "/volumes", "auto");
      if (!real.ok()) return real.status();
      dependencies.backend = std::make_unique<fe::test::FaultInjectingBackend>(std::move(*real), backend_faults);
    }
    dependencies.syncfs = syncfs;
    dependencies.clock = clock;
    dependencies.throttle = throttle;
    Result<std::unique_ptr<Engine>> engine = Engine::Open(config, std::move(dependencies));
    if (!engine.ok()) return engine.status();
    engine_ = std::move(*engine);
    return Status::Ok();
  }
  Result<Instance> ImportTemplate(const std::string& name) {
    CreateRequest request;
    request.name = name;
    request.hypervisor = "cloud-hypervisor";
    request.import_dir = template_dir_;
    return engine_->Create(request);
  }
  std::string DataRoot() const { return scratch_ + "/root"; }
  const std::string& TemplateDir() const { return template_dir_; }
  std::string NetworkDir() const { return DataRoot() + "/network"; }
  std::string MetadataDir(const std::string& id) const { return DataRoot() + "/instances/" + id; }

  Engine& engine() { return *engine_; }
  TestPlugin& plugin() { return plugin_; }
  bool manage_taps = false;  // for the next Open
  // For the next Open: the engine's backend fails the calls these faults plan (null: the real one).
  std::shared_ptr<fe::test::BackendFaults> backend_faults;
  DeferredSync::SyncfsFunction syncfs;  // for the next Open; empty: syncfs(2)
  const Clock* clock = nullptr;         // for the next Open; null: the real clocks
  ThrottleFactory throttle;             // for the next Open; empty: the cgroup throttle
  const std::string& template_dir() const { return template_dir_; }

 private:
  std::string scratch_;
  std::string template_dir_;
  TestPlugin plugin_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace fe::engine::test
