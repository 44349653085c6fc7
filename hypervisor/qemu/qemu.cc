#include "hypervisor/qemu/qemu.h"

#include "hypervisor/qemu/qemu_argv.h"
#include "hypervisor/qemu/qemu_config.h"
#include "hypervisor/qemu/qemu_controller.h"
#include "hypervisor/qemu/qemu_fork.h"

namespace fe::hypervisor::qemu {
namespace {

class QemuPluginImpl final : public Plugin {
 public:
  std::string_view Kind() const override { return "qemu"; }

  PluginCapabilities Capabilities() const override {
    PluginCapabilities capabilities;
    capabilities.fork_stopped = true;
    capabilities.fork_standby = true;
    // vhost-vsock resets its transport after a load and the guest re-reads the CID from the device.
    capabilities.snapshot_keeps_vsock_cid = false;
    capabilities.restore_needs_path_alias = false;
    // With memory_file, Snapshot sets x-ignore-shared (device state only) and `cont` resumes the source.
    capabilities.live_snapshot = true;
    // A fork restored with its template's memory_file mapped share=off and the device state loaded
    // with x-ignore-shared (qemu_controller.h).
    capabilities.shared_memory = true;
    // background-snapshot (QEMU 6.0+, userfaultfd write protection): guests without memory_file.
    capabilities.background_snapshot = true;
    return capabilities;
  }

  bool CanLiveFork(const std::string& instance_dir) const override {
    Result<qemu::Config> config = qemu::ReadConfig(instance_dir);
    return config.ok() && !config->memory_file.empty();
  }

  Result<MemoryFile> RunningMemoryFile(const std::string& instance_dir) const override {
    return qemu::RunningMemoryFile(instance_dir);
  }

  Status CheckGuestDirectory(const std::string& dir, bool standby) const override {
    return qemu::CheckGuestDirectory(dir, standby).Annotate("not a qemu guest directory");
  }

  Result<PreparedFork> PrepareFork(const ForkSpec& spec) const override { return qemu::PrepareFork(spec); }

  Result<std::string> SnapshotMemoryFile(const std::string& instance_dir) const override {
    return qemu::SnapshotMemoryFile(instance_dir);
  }

  Result<LaunchCommand> Launch(const std::string& instance_dir, LaunchMode mode,
                               const MemorySource& memory) const override {
    Result<qemu::Config> config = qemu::ReadConfig(instance_dir);
    if (!config.ok()) return config.status().Annotate("qemu launch");
    if (!memory.empty() && (mode != LaunchMode::kRestore || config->memory_file.empty())) {
      return Status::InvalidArgument("qemu launch of " + instance_dir + ": guest RAM can map " + memory.shared_file +
                                     " only for a restore of a VM whose RAM is a memory_file");
    }
    qemu::Incoming incoming;
    if (mode == LaunchMode::kRestore) incoming.kind = qemu::Incoming::Kind::kDefer;
    LaunchCommand command;
    command.argv = qemu::BuildArgv(*config, incoming, memory.shared_file);
    command.api_socket = config->qmp_socket;
    command.install_hint = "install QEMU (Debian: apt install qemu-system-x86)";
    return command;
  }

  Result<std::unique_ptr<VmController>> Connect(const std::string& api_socket,
                                                std::chrono::milliseconds timeout) const override {
    return qemu::ConnectController(api_socket, timeout);
  }
};

}  // namespace

const Plugin& QemuPlugin() {
  static const QemuPluginImpl plugin;
  return plugin;
}

}  // namespace fe::hypervisor::qemu
