// State changes of one instance: Start (boot), Stop, Standby (pause, snapshot, exit) and Restore.
// Each checks the state first (FailedPrecondition naming it), drives the hypervisor process through
// engine/vm/vm_runner.h, then commits the new state. REQUIRES for every *Locked method: the entry's
// operation lock held exclusively (or the entry not yet published).
//
// TAPs. With EngineConfig::manage_taps the instance's TAP is made before its hypervisor starts (boot
// or restore) and removed when the process ends (stop, standby, a failed start or restore). A restore
// that hands the guest its identity puts the TAP on the bridge only after the handoff.
//
// Identity after a restore. A guest restored from a snapshot has the identity it had when the
// snapshot was taken: for a fork's first restore, its source's. When that differs from the
// instance's own (guest_mac != identity.mac), RestoreLocked hands the guest its identity over the
// instance's identity channel (hypervisor/identity_handoff.h) with the next identity_generation, and
// records what the guest now has. Policy:
//  - No channel: the restore goes on and a warning says the guest keeps the other identity.
//  - A hybrid-vsock channel nobody listens on (a guest without the agent): the same.
//  - Any other failure (no ack within EngineConfig::identity_timeout, the agent's error) fails the
//    restore: two running guests claiming one MAC and IP on a network is worse than a failed restore.
//    The VM is put back into standby (snapshotted again, so the snapshot stays consistent with a RAM
//    file the short run has written), or stopped if that fails too; a fork being made is rolled back.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "engine/engine.h"
#include "engine/network/tap_device.h"
#include "engine/vm/ram_file.h"
#include "engine/vm/vm_runner.h"
#include "snapshot/guest_directory.h"

namespace fe::engine {
namespace {

constexpr std::string_view kDefaultSnapshotDir = "snapshot";

Status WrongState(const Instance& instance, std::string_view operation, std::string_view needed) {
  return Status::FailedPrecondition("cannot " + std::string(operation) + " instance '" + instance.name + "': it is " +
                                    std::string(InstanceStateName(instance.state)) + ", " + std::string(operation) +
                                    " needs " + std::string(needed));
}

// A template's files are what its forks and replicas were made from: running it would change them.
Status CheckNotTemplate(const Instance& instance, std::string_view operation) {
  if (!instance.template_mark) return Status::Ok();
  return Status::FailedPrecondition("cannot " + std::string(operation) + " instance '" + instance.name +
                                    "': it is a template, which never runs (fork it)");
}

}  // namespace

Status Engine::AttachTap(const Instance& instance, bool bridged) const {
  if (!config_.manage_taps || instance.identity.tap_device.empty()) return Status::Ok();
  return network::CreateTap(instance.identity.tap_device, bridged ? config_.bridge : "")
      .Annotate("TAP of instance '" + instance.name + "'");
}

void Engine::DetachTap(const Instance& instance) const {
  if (!config_.manage_taps || instance.identity.tap_device.empty()) return;
  if (Status deleted = network::DeleteTap(instance.identity.tap_device); !deleted.ok()) {
    spdlog::error("instance {} ('{}'): removing TAP {} failed: {}", instance.id, instance.name,
                  instance.identity.tap_device, deleted.ToString());
  }
}

Status Engine::HandOffIdentityLocked(Instance& instance) {
  if (GuestMac(instance) == instance.identity.mac) return Status::Ok();
  if (instance.identity_channel.empty()) {
    spdlog::warn("instance {} ('{}'): no identity channel: its guest keeps MAC {} instead of {}", instance.id,
                 instance.name, GuestMac(instance), instance.identity.mac);
    return Status::Ok();
  }
  hypervisor::IdentityHandoff handoff{instance.identity, GuestMac(instance), instance.identity_generation + 1};
  Result<vm::HandoffOutcome> outcome =
      vm::HandOffGuestIdentity(instance.identity_channel, handoff, config_.identity_timeout,
                               "instance '" + instance.name + "' (" + instance.id + ")");
  if (!outcome.ok()) return outcome.status();
  if (*outcome == vm::HandoffOutcome::kNoAgent) {
    spdlog::warn(
        "instance {} ('{}'): no guest agent listens on vsock port {} of {}: its guest keeps MAC {} "
        "instead of {}",
        instance.id, instance.name, instance.identity_channel.port, instance.identity_channel.path, GuestMac(instance),
        instance.identity.mac);
    return Status::Ok();
  }
  instance.guest_mac.clear();  // the guest has the instance's own identity now
  instance.identity_generation = handoff.generation;
  spdlog::info("instance {} ('{}'): guest acknowledged identity {} {} (generation {})", instance.id, instance.name,
               instance.identity.mac, instance.identity.ipv4, handoff.generation);
  return Status::Ok();
}

std::string Engine::CorrectGuestClock(const Instance& instance) const {
  if (instance.identity_channel.empty()) return "no_agent";
  const std::string who = "instance '" + instance.name + "' (" + instance.id + ")";
  // A short wait: the agent answers in well under a second even under TCG, and a guest without one
  // must not hold a restore or a fork for the whole identity timeout.
  Result<vm::HandoffOutcome> outcome =
      vm::SetGuestClockThrough(instance.identity_channel, std::min(config_.identity_timeout, kGuestClockTimeout), who);
  if (outcome.ok()) return *outcome == vm::HandoffOutcome::kApplied ? "set" : "no_agent";
  spdlog::warn("{}: its guest clock stays behind: {}", who, outcome.status().ToString());
  return outcome.status().code() == ErrorCode::kUnsupported ? "unsupported" : "failed";
}

std::string Engine::SnapshotDirOf(const Instance& instance) const {
  std::string guest_dir = GuestDir(instance);
  Result<snapshot::Manifest> manifest = snapshot::ReadManifest(guest_dir);
  std::string relative =
      manifest.ok() && !manifest->snapshot_dir.empty() ? manifest->snapshot_dir : std::string(kDefaultSnapshotDir);
  return guest_dir + "/" + relative;
}

Result<Instance> Engine::StartLocked(const std::shared_ptr<Entry>& entry) {
  Instance instance = Read(entry);
  if (instance.state != InstanceState::kStopped) return WrongState(instance, "start", "Stopped");
  FE_RETURN_IF_ERROR(CheckNotTemplate(instance, "start"));
  FE_RETURN_IF_ERROR(CheckMemoryNotMapped(instance, "start"));
  Result<const hypervisor::Plugin*> plugin = PluginFor(instance);
  if (!plugin.ok()) return plugin.status();
  vm::VmContext context{*plugin, GuestDir(instance), InstanceDir(instance.id), instance.identity,
                        config_.hypervisor_timeout};
  // A RAM file written in full before the boot keeps the clones of later live forks cheap
  // (engine/vm/ram_file.h). Without it the VM still boots, on the file as it is.
  if (Result<hypervisor::MemoryFile> ram = (*plugin)->RunningMemoryFile(GuestDir(instance)); ram.ok()) {
    Result<bool> laid_out = vm::LayOutRamFileForBoot(GuestDir(instance), *ram);
    if (!laid_out.ok()) spdlog::warn("starting '{}': {}", instance.name, laid_out.status().ToString());
  }
  FE_RETURN_IF_ERROR(AttachTap(instance).Annotate("starting '" + instance.name + "'"));
  Result<vm::ProcessRecord> process = vm::BootVm(context);
  if (!process.ok()) {
    DetachTap(instance);
    return process.status().Annotate("starting '" + instance.name + "'");
  }
  // A booted guest configures the MAC of its config: the instance's own.
  instance.guest_mac.clear();
  instance.state = InstanceState::kRunning;
  instance.process = *process;
  if (Status committed = Commit(entry, instance); !committed.ok()) {
    // Without a record of it the process would be invisible to us: end it.
    if (Status stopped = vm::StopVm(context, *process); !stopped.ok()) {
      spdlog::error("start {}: stopping the unrecorded process {} failed: {}", instance.id, process->pid,
                    stopped.ToString());
    }
    DetachTap(instance);
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
  vm::VmContext context{*plugin, GuestDir(instance), InstanceDir(instance.id), instance.identity,
                        config_.hypervisor_timeout};
  if (Status stopped = vm::StopVm(context, *instance.process); !stopped.ok()) {
    return stopped.Annotate("stopping '" + instance.name + "'");
  }
  DetachTap(instance);
  instance.state = InstanceState::kStopped;
  instance.process.reset();
  instance.shared_memory.reset();  // a boot starts with fresh RAM of its own
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
  vm::VmContext context{*plugin, guest_dir, InstanceDir(instance.id), instance.identity, config_.hypervisor_timeout};
  // The snapshot's files (and a RAM file the VM wrote through its mapping) become durable in one syncfs
  // before the metadata says Standby (base/deferred_sync.h). The scope ends before that metadata is
  // written: it must be durable on its own.
  std::optional<DeferredSync> snapshot_writes(std::in_place, syncfs_);
  if (Status snapshotted = vm::SnapshotAndStopVm(context, *instance.process, snapshot_dir); !snapshotted.ok()) {
    return snapshotted.Annotate("standby of '" + instance.name + "'");
  }
  snapshot_writes->Note(guest_dir);
  DetachTap(instance);
  // Forks and restores find the snapshot through the manifest; without one, plugins use the
  // conventional "snapshot" directory, which is what SnapshotDirOf chose.
  Result<snapshot::Manifest> manifest = snapshot::ReadManifest(guest_dir);
  if (manifest.ok() && manifest->snapshot_dir.empty()) {
    manifest->snapshot_dir = std::string(kDefaultSnapshotDir);
    FE_RETURN_IF_ERROR(snapshot::WriteManifest(guest_dir, *manifest));
  } else if (!manifest.ok() && manifest.status().code() != ErrorCode::kNotFound) {
    return manifest.status().Annotate("standby of '" + instance.name + "'");
  }
  Status durable = snapshot_writes->Sync();
  snapshot_writes.reset();
  if (!durable.ok()) {
    // The process is gone and its snapshot may not have reached the disk (a write-back error): the
    // instance is recorded Stopped, not Standby on a snapshot that could be lost.
    instance.state = InstanceState::kStopped;
    instance.process.reset();
    instance.shared_memory.reset();
    std::string outcome = "it is Stopped";
    if (Status committed = Commit(entry, instance); !committed.ok()) {
      outcome += "; recording that failed: " + committed.message();
    }
    return durable.Annotate("standby of '" + instance.name + "': making the snapshot durable (" + outcome + ")");
  }
  instance.state = InstanceState::kStandby;
  instance.process.reset();
  // A VM whose RAM was a private mapping saved it in full into its own snapshot.
  instance.shared_memory.reset();
  FE_RETURN_IF_ERROR(Commit(entry, instance));
  spdlog::info("instance {} ('{}') is in standby, snapshot in {}", instance.id, instance.name, snapshot_dir);
  return Read(entry);
}

Result<Instance> Engine::RestoreLocked(const std::shared_ptr<Entry>& entry, int64_t* identity_us, std::string* clock) {
  Instance instance = Read(entry);
  if (instance.state != InstanceState::kStandby) return WrongState(instance, "restore", "Standby");
  FE_RETURN_IF_ERROR(CheckNotTemplate(instance, "restore"));
  // A template's restore would write the memory file its shared-memory forks map.
  FE_RETURN_IF_ERROR(CheckMemoryNotMapped(instance, "restore"));
  Result<const hypervisor::Plugin*> plugin = PluginFor(instance);
  if (!plugin.ok()) return plugin.status();
  vm::VmContext context{*plugin,           GuestDir(instance),         InstanceDir(instance.id),
                        instance.identity, config_.hypervisor_timeout, MemorySourceOf(instance)};
  const std::string snapshot_dir = SnapshotDirOf(instance);
  // A guest waking up with another instance's identity (a fork's first restore) stays off the bridge
  // until it has its own: whatever it sends before the handoff (the gratuitous ARPs a hypervisor asks
  // a restored guest for) carries the other instance's MAC and IP, and the bridge would then deliver
  // that instance's traffic to this TAP.
  const bool off_bridge_until_handoff = GuestMac(instance) != instance.identity.mac;
  FE_RETURN_IF_ERROR(AttachTap(instance, !off_bridge_until_handoff).Annotate("restoring '" + instance.name + "'"));
  Result<vm::ProcessRecord> process = vm::RestoreVm(context, snapshot_dir);
  if (!process.ok()) {
    DetachTap(instance);
    return process.status().Annotate("restoring '" + instance.name + "'");
  }
  const auto identity_start = clock_.Now();
  // A guest that keeps its identity gets only the host's time (its clock stopped while it stood by);
  // one that gets an identity gets the time with it.
  const bool keeps_identity = GuestMac(instance) == instance.identity.mac;
  Status handed = HandOffIdentityLocked(instance);
  if (handed.ok() && keeps_identity) {
    std::string outcome = CorrectGuestClock(instance);
    if (clock != nullptr) *clock = std::move(outcome);
  }
  if (identity_us != nullptr) *identity_us += clock_.MicrosSince(identity_start);
  if (handed.ok() && off_bridge_until_handoff && config_.manage_taps && !config_.bridge.empty() &&
      !instance.identity.tap_device.empty()) {
    handed = network::JoinBridge(instance.identity.tap_device, config_.bridge).Annotate("after the identity handoff");
  }
  if (!handed.ok()) {
    // Back into standby (see the file comment); the instance's metadata still says Standby.
    std::string undo = "it is in standby again";
    Status saved = vm::SnapshotAndStopVm(context, *process, snapshot_dir);
    if (saved.ok() && instance.shared_memory) {
      // The new snapshot holds the RAM in full: the instance no longer maps the template's file.
      instance.shared_memory.reset();
      if (Status committed = Commit(entry, instance); !committed.ok())
        undo += "; recording that failed: " + committed.message();
    }
    if (!saved.ok()) {
      (void)vm::StopVm(context, *process);
      undo = "putting it back into standby failed (" + saved.message() + "), so it is Stopped";
      instance.state = InstanceState::kStopped;
      instance.process.reset();
      instance.shared_memory.reset();
      if (Status committed = Commit(entry, instance); !committed.ok())
        undo += "; recording that failed: " + committed.message();
    }
    DetachTap(instance);
    return handed.Annotate("restoring '" + instance.name + "': identity handoff (" + undo + ")");
  }
  instance.state = InstanceState::kRunning;
  instance.process = *process;
  if (Status committed = Commit(entry, instance); !committed.ok()) {
    if (Status stopped = vm::StopVm(context, *process); !stopped.ok()) {
      spdlog::error("restore {}: stopping the unrecorded process {} failed: {}", instance.id, process->pid,
                    stopped.ToString());
    }
    DetachTap(instance);
    return committed.Annotate("restoring '" + instance.name + "'");
  }
  spdlog::info("restored instance {} ('{}'), pid {}", instance.id, instance.name, process->pid);
  return Read(entry);
}

}  // namespace fe::engine
