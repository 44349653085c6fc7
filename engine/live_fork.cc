// The live path of a from_running fork: the source is paused, not stopped.
//
// When the plugin snapshots a running VM leaving its guest RAM in a shared file in the instance
// directory (PluginCapabilities::live_snapshot and Plugin::CanLiveFork: QEMU with memory_file) and the
// storage backend's clones share data (a reflink or snapshot clone costs little, however big the RAM
// file), a fork of a Running source is:
//   pause -> snapshot (device state only) into the source's snapshot directory -> for each fork, its
//   intent metadata and a clone of the source's volume (the RAM file is cloned while the VM is paused,
//   so the copy matches the saved device state) -> resume.
// The source's process never stops (same pid and start time); ForkPhases::source_pause_us is how long
// it was paused. Each fork is then rewritten and brought to its target state from its own copy of
// the snapshot, exactly like a fork of a Standby source, while the source runs on.
//
// Where the snapshot goes. It is written where standby would write it, the source's snapshot
// directory (and the manifest names it, as standby does; a directory without a manifest gets a
// minimal one, {hypervisor, snapshot_dir}, which the forks' PrepareFork reads): a Running instance never reads that
// directory, so replacing a stale snapshot there loses nothing, and the forks find the snapshot in
// their clones without a copy. Nothing else of the source is written. Staging it outside the volume
// would cost a copy into each fork after the clone, for no gain.
//
// Clones are made one after another while the source is paused: the pause grows with the fork count
// (each reflink of the RAM file is one clone). On any failure the forks' intents and volumes are
// removed and the source is resumed; it is Running afterwards on every path but a failed resume.
#include <chrono>

#include <spdlog/spdlog.h>

#include "engine/fork_plan.h"
#include "engine/vm/vm_runner.h"
#include "snapshot/guest_directory.h"

namespace fe::engine {
namespace {}  // namespace

bool Engine::CanLiveFork(const Instance& source, const hypervisor::Plugin& plugin) const {
  if (source.state != InstanceState::kRunning || !source.process) return false;
  if (!plugin.Capabilities().live_snapshot || !backend_->Capabilities().shares_data) return false;
  return plugin.CanLiveFork(GuestDir(source));
}

Status Engine::LiveForkLocked(const Instance& source, std::vector<ForkPlan>& plans, const hypervisor::Plugin& plugin,
                              int64_t& pause_us) {
  const std::string what = "live fork of '" + source.name + "'";
  const std::string guest_dir = GuestDir(source);
  const std::string snapshot_dir = SnapshotDirOf(source);
  // Forks and restores find the snapshot through the manifest (as after a standby); written before the
  // pause, so the pause holds only the snapshot and the clones.
  // A directory without a manifest gets one naming only the hypervisor and the snapshot: the forks'
  // PrepareFork looks the snapshot up there.
  Result<snapshot::Manifest> manifest = snapshot::ReadManifest(guest_dir);
  if (!manifest.ok() && manifest.status().code() == ErrorCode::kNotFound) {
    manifest = snapshot::Manifest{source.hypervisor, "", {}};
  }
  if (!manifest.ok()) return manifest.status().Annotate(what);
  if (manifest->snapshot_dir.empty()) {
    manifest->snapshot_dir = snapshot_dir.substr(guest_dir.size() + 1);
    FE_RETURN_IF_ERROR(snapshot::WriteManifest(guest_dir, *manifest).Annotate(what));
  }

  // While paused: each fork's intent and clone (undone by its plan on any later failure).
  auto clone_all = [&]() -> Status {
    for (ForkPlan& plan : plans) FE_RETURN_IF_ERROR(WriteIntentAndClone(plan));
    return Status::Ok();
  };
  vm::VmContext context{&plugin, guest_dir, InstanceDir(source.id), source.identity, config_.hypervisor_timeout};
  const Clock::SteadyPoint pause_start = clock_.Now();
  Status snapshotted = vm::SnapshotRunningVm(context, *source.process, snapshot_dir, clone_all);
  pause_us = clock_.MicrosSince(pause_start);
  if (!snapshotted.ok()) {
    for (ForkPlan& plan : plans) plan.undo.Revert();
    return snapshotted.Annotate(what);
  }
  spdlog::info("{}: source {} paused {}us for the snapshot and {} clone(s)", what, source.id, pause_us, plans.size());
  // The rest of each fork from its own clone, while the source runs on.
  return RunForkPlans(plans, plugin);
}

}  // namespace fe::engine
