// State changes of one instance: Start (boot), Stop, Standby (pause, snapshot, exit) and Restore.
// Each checks the state first (FailedPrecondition naming it), drives the hypervisor process through
// engine/vm_runner.h, then commits the new state. REQUIRES for every *Locked method: the entry's
// operation lock held exclusively (or the entry not yet published).
#include <spdlog/spdlog.h>

#include "engine/engine.h"
#include "engine/vm_runner.h"
#include "snapshot/guest_directory.h"

namespace fe::engine {
namespace {

constexpr std::string_view kDefaultSnapshotDir = "snapshot";

Status WrongState(const Instance& instance, std::string_view operation, std::string_view needed) {
  return Status(ErrorCode::kFailedPrecondition, "cannot " + std::string(operation) + " instance '" + instance.name +
                                                    "': it is " + std::string(InstanceStateName(instance.state)) +
                                                    ", " + std::string(operation) + " needs " + std::string(needed));
}

}  // namespace

std::string Engine::SnapshotDirOf(const Instance& instance) const {
  std::string guest_dir = GuestDir(instance);
  Result<snapshot::Manifest> manifest = snapshot::ReadManifest(guest_dir);
  std::string relative = manifest.ok() && !manifest->snapshot_dir.empty() ? manifest->snapshot_dir
                                                                          : std::string(kDefaultSnapshotDir);
  return guest_dir + "/" + relative;
}

Result<Instance> Engine::StartLocked(const std::shared_ptr<Entry>& entry) {
  Instance instance = Read(entry);
  if (instance.state != InstanceState::kStopped) return WrongState(instance, "start", "Stopped");
  Result<const hypervisor::Plugin*> plugin = PluginFor(instance);
  if (!plugin.ok()) return plugin.status();
  VmContext context{*plugin, GuestDir(instance), InstanceDir(instance.id), instance.identity,
                    config_.hypervisor_timeout};
  Result<ProcessRecord> process = BootVm(context);
  if (!process.ok()) return process.status().Annotate("starting '" + instance.name + "'");
  instance.state = InstanceState::kRunning;
  instance.process = *process;
  if (Status committed = Commit(entry, instance); !committed.ok()) {
    // Without a record of it the process would be invisible to us: end it.
    if (Status stopped = StopVm(context, *process); !stopped.ok()) {
      spdlog::error("start {}: stopping the unrecorded process {} failed: {}", instance.id, process->pid,
                    stopped.ToString());
    }
    return committed.Annotate("starting '" + instance.name + "'");
  }
  spdlog::info("started instance {} ('{}'), pid {}", instance.id, instance.name, process->pid);
  return Read(entry);
}

Result<Instance> Engine::StopLocked(const std::shared_ptr<Entry>& entry) {
  Instance instance = Read(entry);
  if (instance.state != InstanceState::kRunning || !instance.process) return WrongState(instance, "stop", "Running");
  Result<const hypervisor::Plugin*> plugin = PluginFor(instance);
  if (!plugin.ok()) return plugin.status();
  VmContext context{*plugin, GuestDir(instance), InstanceDir(instance.id), instance.identity,
                    config_.hypervisor_timeout};
  if (Status stopped = StopVm(context, *instance.process); !stopped.ok()) {
    return stopped.Annotate("stopping '" + instance.name + "'");
  }
  instance.state = InstanceState::kStopped;
  instance.process.reset();
  FE_RETURN_IF_ERROR(Commit(entry, instance));
  spdlog::info("stopped instance {} ('{}')", instance.id, instance.name);
  return Read(entry);
}

Result<Instance> Engine::StandbyLocked(const std::shared_ptr<Entry>& entry) {
  Instance instance = Read(entry);
  if (instance.state != InstanceState::kRunning || !instance.process) {
    return WrongState(instance, "standby", "Running");
  }
  Result<const hypervisor::Plugin*> plugin = PluginFor(instance);
  if (!plugin.ok()) return plugin.status();
  std::string guest_dir = GuestDir(instance);
  std::string snapshot_dir = SnapshotDirOf(instance);
  VmContext context{*plugin, guest_dir, InstanceDir(instance.id), instance.identity, config_.hypervisor_timeout};
  if (Status snapshotted = SnapshotAndStopVm(context, *instance.process, snapshot_dir); !snapshotted.ok()) {
    return snapshotted.Annotate("standby of '" + instance.name + "'");
  }
  // Forks and restores find the snapshot through the manifest; without one, plugins use the
  // conventional "snapshot" directory, which is what SnapshotDirOf chose.
  Result<snapshot::Manifest> manifest = snapshot::ReadManifest(guest_dir);
  if (manifest.ok() && manifest->snapshot_dir.empty()) {
    manifest->snapshot_dir = std::string(kDefaultSnapshotDir);
    FE_RETURN_IF_ERROR(snapshot::WriteManifest(guest_dir, *manifest));
  } else if (!manifest.ok() && manifest.status().code() != ErrorCode::kNotFound) {
    return manifest.status().Annotate("standby of '" + instance.name + "'");
  }
  instance.state = InstanceState::kStandby;
  instance.process.reset();
  FE_RETURN_IF_ERROR(Commit(entry, instance));
  spdlog::info("instance {} ('{}') is in standby, snapshot in {}", instance.id, instance.name, snapshot_dir);
  return Read(entry);
}

Result<Instance> Engine::RestoreLocked(const std::shared_ptr<Entry>& entry) {
  Instance instance = Read(entry);
  if (instance.state != InstanceState::kStandby) return WrongState(instance, "restore", "Standby");
  Result<const hypervisor::Plugin*> plugin = PluginFor(instance);
  if (!plugin.ok()) return plugin.status();
  VmContext context{*plugin, GuestDir(instance), InstanceDir(instance.id), instance.identity,
                    config_.hypervisor_timeout};
  Result<ProcessRecord> process = RestoreVm(context, SnapshotDirOf(instance));
  if (!process.ok()) return process.status().Annotate("restoring '" + instance.name + "'");
  instance.state = InstanceState::kRunning;
  instance.process = *process;
  if (Status committed = Commit(entry, instance); !committed.ok()) {
    if (Status stopped = StopVm(context, *process); !stopped.ok()) {
      spdlog::error("restore {}: stopping the unrecorded process {} failed: {}", instance.id, process->pid,
                    stopped.ToString());
    }
    return committed.Annotate("restoring '" + instance.name + "'");
  }
  spdlog::info("restored instance {} ('{}'), pid {}", instance.id, instance.name, process->pid);
  return Read(entry);
}

}  // namespace fe::engine
