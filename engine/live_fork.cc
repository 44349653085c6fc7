// The live path of a from_running fork: the source is paused, not stopped.
//
// When the plugin snapshots a running VM leaving its guest RAM in a shared file in the instance
// directory (PluginCapabilities::live_snapshot and Plugin::CanLiveFork: QEMU with memory_file) and the
// storage backend's clones share data (a reflink or snapshot clone costs little, however big the RAM
// file), a fork of a Running source is:
//   pre-flush (the RAM file written back in rounds while the VM runs, the VM CPU-throttled when the
//   rounds stop shrinking: engine/vm/ram_preflush.h; the throttle released) -> pause -> snapshot (device state only)
//   into the source's snapshot directory -> for each fork, its intent metadata and a clone of the source's volume (the
//   RAM file is cloned while the VM is paused, so the copy matches the saved device state; the clone first writes back
//   what is still dirty, which the pre-flush keeps small) -> resume.
// The source's process never stops (same pid and start time); ForkPhases::source_pause_us is how long
// it was paused. Each fork is then rewritten and brought to its target state from its own copy of
// the snapshot, exactly like a fork of a Standby source, while the source runs on and its guest agent
// sets its clock again (it stood still during the pause). A failed snapshot resumes the source and, if
// it had been paused, sets its clock again too.
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
#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <future>

#include <spdlog/spdlog.h>

#include "base/confined_dir.h"
#include "base/deferred_sync.h"
#include "engine/fork_plan.h"
#include "engine/vm/vm_runner.h"
#include "snapshot/guest_directory.h"

namespace fe::engine {
namespace {

struct RamFile {
  UniqueFd fd;
  std::string display;
};

// The source's RAM file, resolved beneath its volume: the config naming it is the guest's.
Result<RamFile> OpenRamFile(const std::string& guest_dir, const hypervisor::Plugin& plugin) {
  Result<hypervisor::MemoryFile> file = plugin.RunningMemoryFile(guest_dir);
  if (!file.ok()) return file.status();
  Result<ConfinedDir> volume = ConfinedDir::Open(guest_dir);
  if (!volume.ok()) return volume.status();
  const std::string relative = file->path.substr(std::min(file->path.size(), guest_dir.size() + 1));
  Result<UniqueFd> fd = volume->OpenFile(relative, O_RDONLY | O_CLOEXEC);
  if (!fd.ok()) return fd.status();
  return RamFile{std::move(*fd), file->path};
}

}  // namespace

Status Engine::NameSnapshotInManifest(const Instance& source, const std::string& what) const {
  const std::string guest_dir = GuestDir(source);
  // A directory without a manifest gets one naming only the hypervisor and the snapshot: the forks'
  // PrepareFork looks the snapshot up there.
  Result<snapshot::Manifest> manifest = snapshot::ReadManifest(guest_dir);
  if (!manifest.ok() && manifest.status().code() == ErrorCode::kNotFound) {
    manifest = snapshot::Manifest{source.hypervisor, "", {}};
  }
  if (!manifest.ok()) return manifest.status().Annotate(what);
  if (!manifest->snapshot_dir.empty()) return Status::Ok();
  manifest->snapshot_dir = SnapshotDirOf(source).substr(guest_dir.size() + 1);
  return snapshot::WriteManifest(guest_dir, *manifest).Annotate(what);
}

bool Engine::CanLiveFork(const Instance& source, const hypervisor::Plugin& plugin) const {
  if (source.state != InstanceState::kRunning || !source.process) return false;
  if (!plugin.Capabilities().live_snapshot || !backend_->Capabilities().shares_data) return false;
  return plugin.CanLiveFork(GuestDir(source));
}

Status Engine::LiveForkLocked(const Instance& source, std::vector<ForkPlan>& plans, const hypervisor::Plugin& plugin,
                              bool preflush, ForkPhases& source_phases) {
  const std::string what = "live fork of '" + source.name + "'";
  const std::string guest_dir = GuestDir(source);
  const std::string snapshot_dir = SnapshotDirOf(source);
  FE_RETURN_IF_ERROR(NameSnapshotInManifest(source, what));

  // The RAM file, for the pre-flush and for what the pause found dirty. Without it the pause writes
  // back whatever the guest dirtied, as before.
  Result<RamFile> ram = OpenRamFile(guest_dir, plugin);
  if (!ram.ok()) spdlog::info("{}: no pre-flush: {}", what, ram.status().ToString());
  std::unique_ptr<vm::CpuThrottle> throttle;
  if (ram.ok() && preflush && config_.live_fork_throttle) {
    Result<std::unique_ptr<vm::CpuThrottle>> made = throttle_(source.process->pid);
    if (made.ok()) {
      throttle = std::move(*made);
    } else {
      spdlog::info("{}: the source cannot be throttled: {}", what, made.status().ToString());
    }
  }

  // While paused: each fork's intent and clone (undone by its plan on any later failure).
  vm::LiveSnapshotSteps steps;
  Clock::SteadyPoint pause_start = clock_.Now();
  vm::PreflushReport report;
  steps.before_pause = [&]() -> Status {
    if (ram.ok() && preflush) {
      Result<vm::PreflushReport> rounds =
          vm::PreflushRamFile(ram->fd.get(), ram->display, config_.live_fork_preflush, throttle.get(), clock_);
      if (!rounds.ok()) return rounds.status().Annotate("pre-flush");
      report = *rounds;
      if (!report.throttle_error.empty()) spdlog::warn("{}: {}", what, report.throttle_error);
    }
    // The source gets its CPU back just before the pause is asked for, not after it: a throttled
    // hypervisor is slow to answer `stop` (forkbench --e2e: pauses of 44-164 ms after a 95% throttle,
    // 16-30 ms unthrottled), and the guest dirties little in the few ms until it stops.
    if (throttle) {
      if (Status released = throttle->Release(); !released.ok()) {
        spdlog::warn("{}: releasing the source's throttle: {}", what, released.ToString());
      }
    }
    pause_start = clock_.Now();
    return Status::Ok();
  };
  bool paused = false;
  steps.after_pause = [&] {
    paused = true;
    if (ram.ok()) {
      Result<std::optional<uint64_t>> dirty = vm::DirtyBytes(ram->fd.get());
      if (dirty.ok()) source_phases.dirty_bytes_at_pause = *dirty;
    }
  };
  steps.while_paused = [&]() -> Status {
    for (ForkPlan& plan : plans) FE_RETURN_IF_ERROR(WriteIntentAndClone(plan));
    return Status::Ok();
  };
  vm::VmContext context{&plugin, guest_dir, InstanceDir(source.id), source.identity, config_.hypervisor_timeout};
  // Nothing written during the pause is synced there: the snapshot serves only these forks (a Running
  // source never reads it), and each fork's intent and clone become durable with its own one sync
  // before its final metadata (CommitForks), on the same filesystems. Left unsynced, this scope only
  // keeps fsyncs (device flushes) out of the pause.
  std::optional<DeferredSync> paused_writes(std::in_place, syncfs_);
  Status snapshotted = vm::SnapshotRunningVm(context, *source.process, snapshot_dir, steps);
  paused_writes.reset();
  source_phases.source_pause_us = clock_.MicrosSince(pause_start);
  source_phases.preflush_us = report.preflush_us;
  source_phases.preflush_rounds = report.rounds;
  if (report.throttle_started_us >= 0) source_phases.throttle_us = report.preflush_us - report.throttle_started_us;
  if (!snapshotted.ok()) {
    for (ForkPlan& plan : plans) plan.undo.Revert();
    // A pause that happened stopped the source's clock too (SnapshotRunningVm resumed it).
    if (paused) spdlog::info("{}: source clock after the failed snapshot: {}", what, CorrectGuestClock(source));
    return snapshotted.Annotate(what);
  }
  spdlog::info(
      "{}: source {} pre-flushed {} bytes in {} round(s), {}us (throttled {}us, up to {}%), paused {}us "
      "with {} bytes dirty for the snapshot and {} clone(s)",
      what, source.id, report.written_bytes, report.rounds, report.preflush_us, source_phases.throttle_us,
      report.throttle_percent, source_phases.source_pause_us, source_phases.dirty_bytes_at_pause.value_or(0),
      plans.size());
  // The rest of each fork from its own clone, while the source runs on and, beside them, gets its clock
  // back (it stood still during the pause).
  const Clock::SteadyPoint clock_start = clock_.Now();
  std::future<std::string> source_clock = std::async(std::launch::async, [&] {
    std::string outcome = CorrectGuestClock(source);
    source_phases.source_clock_us = clock_.MicrosSince(clock_start);
    return outcome;
  });
  Status made = RunForkPlans(plans, plugin);
  const std::string clock_outcome = source_clock.get();
  for (ForkPlan& plan : plans) plan.outcome.source_clock = clock_outcome;
  return made;
}

}  // namespace fe::engine
