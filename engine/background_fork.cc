// The "source_pause": "background" path of a from_running fork: the source's guest RAM is saved while
// it runs.
//
// For a source whose guest RAM is anonymous memory (no shared RAM file, so no live path) the other
// choice is standby and restore: the source stops for a full save and a full load. With a plugin that
// can snapshot a running VM in the background (PluginCapabilities::background_snapshot: QEMU's
// background-snapshot, which write-protects guest RAM with userfaultfd and saves each page before the
// guest may change it), a fork of a Running source is:
//   hold the disks still -> for each fork, its intent metadata and a clone of the source's volume (the
//   disks as the capture will have them) -> start the background snapshot into the first fork's
//   snapshot directory (the hypervisor prepares it, then captures device state and RAM) -> release
//   the disks -> wait while guest RAM as captured is written out, the source running -> copy the
//   snapshot's files into the other forks' snapshot directories (copy_file_range: shared extents where
//   the filesystem can) -> each fork rewritten and restored from its own copy, like a fork of a
//   Standby source.
// First, while the source runs, its guest RAM is collapsed into huge pages again (vm/huge_pages.h:
// QEMU's preparation and capture then cost per 2 MiB, not per 4 KiB page).
// Holding the disks still (vm::SnapshotRunningVmInBackground): the source's guest agent freezes its
// filesystems (FIFREEZE; vm::GuestFreeze) and the VM runs on, writers in it waiting, through the clones
// and QEMU's preparation (which reads every page of guest RAM); the VM stops only
// for QEMU's capture, a few ms (ForkPhases::source_pause_us; filesystems_frozen_us is the freeze).
// A guest that cannot be frozen (no agent channel, an agent without freeze, a swap disk) is paused
// instead, and its pause then spans the clones and QEMU's preparation.
// The source keeps its process and its guest agent sets its clock again after the hold. The forks are
// ready later than on the live path: they wait for the whole save (background_snapshot_us) and load
// RAM in full; their agent thaws what the capture froze when it is handed their identity.
//
// The snapshot goes into the first fork's volume, not the source's: the source never needs it, and
// the forks' clones were made before it existed. On any failure the forks' intents and volumes are
// removed (the snapshot with them) and the source runs on, thawed.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <future>

#include <spdlog/spdlog.h>

#include "base/atomic_file.h"
#include "base/confined_dir.h"
#include "base/deferred_sync.h"
#include "engine/fork_plan.h"
#include "engine/vm/huge_pages.h"
#include "engine/vm/vm_runner.h"
#include "storage/tree/sparse_copy.h"

namespace fe::engine {
namespace {

// Copies the snapshot's `files` from one fork's snapshot directory into another's (made if missing),
// each into a temporary file renamed over the old one; everything resolved beneath the two volumes.
Status CopySnapshotFiles(const std::string& from_volume, const std::string& to_volume, const std::string& relative_dir,
                         const std::vector<std::string>& files) {
  FE_ASSIGN_OR_RETURN(ConfinedDir from_root, ConfinedDir::Open(from_volume));
  FE_ASSIGN_OR_RETURN(ConfinedDir from, from_root.OpenSubdirectory(relative_dir));
  FE_ASSIGN_OR_RETURN(ConfinedDir to_root, ConfinedDir::Open(to_volume));
  FE_RETURN_IF_ERROR(to_root.MakeDirectory(relative_dir));
  FE_ASSIGN_OR_RETURN(ConfinedDir to, to_root.OpenSubdirectory(relative_dir));
  for (const std::string& name : files) {
    FE_ASSIGN_OR_RETURN(UniqueFd source, from.OpenFile(name, O_RDONLY | O_CLOEXEC));
    struct stat info {};
    if (::fstat(source.get(), &info) != 0) return Status::FromErrno(errno, "fstat", from.PathOf(name));
    FE_ASSIGN_OR_RETURN(auto created, CreateTemporaryFileAt(to.fd(), to.path(), name));
    const std::string& temporary = created.second;
    Result<uint64_t> copied = storage::tree::SparseCopy(source.get(), created.first.get(),
                                                        static_cast<uint64_t>(info.st_size), to.PathOf(temporary));
    Status placed = copied.status();
    if (placed.ok() && ::fchmod(created.first.get(), info.st_mode & 0777) != 0) {
      placed = Status::FromErrno(errno, "chmod", to.PathOf(temporary));
    }
    if (placed.ok() && ::renameat(to.fd(), temporary.c_str(), to.fd(), name.c_str()) != 0) {
      placed = Status::FromErrno(errno, "rename " + to.PathOf(temporary) + " to", to.PathOf(name));
    }
    if (!placed.ok()) {
      (void)to.Remove(temporary);
      return placed;
    }
  }
  return Status::Ok();
}

}  // namespace

Status Engine::CheckBackgroundForkable(const Instance& source, const hypervisor::Plugin& plugin) const {
  if (!plugin.Capabilities().background_snapshot) {
    return Status::Unsupported("hypervisor '" + source.hypervisor +
                               "' cannot snapshot a running VM while it runs: fork '" + source.name +
                               "' with source_pause \"short\"");
  }
  if (plugin.CanLiveFork(GuestDir(source))) {
    return Status::Unsupported("instance '" + source.name +
                               "' keeps its guest RAM in a shared memory file, which a background snapshot cannot "
                               "write-protect: fork it with source_pause \"short\" (the live path pauses it for its "
                               "device state and the clones)");
  }
  return Status::Ok();
}

Status Engine::BackgroundForkLocked(const Instance& source, std::vector<ForkPlan>& plans,
                                    const hypervisor::Plugin& plugin, ForkPhases& source_phases) {
  const std::string what = "background fork of '" + source.name + "'";
  const std::string guest_dir = GuestDir(source);
  FE_RETURN_IF_ERROR(NameSnapshotInManifest(source, what));
  const std::string relative_snapshot_dir = SnapshotDirOf(source).substr(guest_dir.size() + 1);

  vm::BackgroundSnapshotSteps steps;
  Clock::SteadyPoint hold_start = clock_.Now();
  Clock::SteadyPoint released_at = hold_start;
  steps.before_hold = [&] { hold_start = clock_.Now(); };
  steps.while_held = [&]() -> Status {
    for (ForkPlan& plan : plans) FE_RETURN_IF_ERROR(WriteIntentAndClone(plan));
    return Status::Ok();
  };
  // As soon as the source is released its clock is set, beside the save (it stood still in a pause,
  // and for the hypervisor's stop of a frozen guest).
  std::future<std::string> source_clock;
  vm::SourceHold hold;
  steps.released = [&](const vm::SourceHold& how) {
    released_at = clock_.Now();
    hold = how;
    const int64_t held_us = clock_.MicrosSince(hold_start);
    if (how.frozen) {
      source_phases.filesystems_frozen_us = std::max<int64_t>(held_us, 1);
      // The VM ran through the freeze: it stopped only for the capture (the whole hold, should the
      // hypervisor not say how long).
      source_phases.source_pause_us = how.vm_stopped ? how.vm_stopped->count() : held_us;
    } else {
      source_phases.source_pause_us = held_us;
    }
    source_clock = std::async(std::launch::async, [this, &source, &source_phases] {
      const Clock::SteadyPoint start = clock_.Now();
      std::string outcome = CorrectGuestClock(source);
      source_phases.source_clock_us = clock_.MicrosSince(start);
      return outcome;
    });
  };

  // Before the disks are held still, while the source runs: its guest RAM back into huge pages, which
  // the previous background snapshot's write faults split (engine/vm/huge_pages.h). Best effort.
  const Clock::SteadyPoint collapse_start = clock_.Now();
  Result<vm::MemoryRange> collapsed = vm::CollapseGuestRamIntoHugePages(*source.process);
  source_phases.huge_page_collapse_us = collapsed.ok() ? std::max<int64_t>(clock_.MicrosSince(collapse_start), 1) : 0;
  if (!collapsed.ok())
    spdlog::info("{}: guest RAM not collapsed into huge pages: {}", what, collapsed.status().ToString());

  vm::VmContext context{&plugin, guest_dir, InstanceDir(source.id), source.identity, config_.hypervisor_timeout};
  const vm::AgentAccess agent{source.identity_channel, config_.identity_timeout,
                              "instance '" + source.name + "' (" + source.id + ")"};
  // The clones in the pause are not synced there: each fork's own sync covers them (as on the live path).
  std::optional<DeferredSync> paused_writes(std::in_place, syncfs_);
  const std::string first_snapshot_dir = GuestDir(plans.front().fork) + "/" + relative_snapshot_dir;
  Result<std::vector<std::string>> files =
      vm::SnapshotRunningVmInBackground(context, *source.process, agent, first_snapshot_dir, steps);
  paused_writes.reset();
  source_phases.background_snapshot_us = clock_.MicrosSince(released_at);
  const std::string clock_outcome = source_clock.valid() ? source_clock.get() : std::string();
  auto fail = [&](const Status& status) {
    for (ForkPlan& plan : plans) plan.undo.Revert();
    return status.Annotate(what);
  };
  if (!files.ok()) return fail(files.status());
  for (size_t i = 1; i < plans.size(); ++i) {
    Status copied =
        CopySnapshotFiles(GuestDir(plans.front().fork), GuestDir(plans[i].fork), relative_snapshot_dir, *files);
    if (!copied.ok()) return fail(plans[i].Failed("copying the snapshot from '" + plans.front().name + "'", copied));
  }
  if (hold.frozen) {
    std::string mounts;
    for (const std::string& mount : hold.frozen_mounts) mounts += (mounts.empty() ? "" : " ") + mount;
    spdlog::info(
        "{}: source {} ran with its filesystems ({}) frozen {}us for {} clone(s) and the capture, stopped "
        "{}us; snapshot written in {}us",
        what, source.id, mounts.empty() ? "none on a disk" : mounts, source_phases.filesystems_frozen_us, plans.size(),
        source_phases.source_pause_us, source_phases.background_snapshot_us);
  } else {
    spdlog::info("{}: source {} paused {}us for {} clone(s) ({}), snapshot written in {}us while it ran", what,
                 source.id, source_phases.source_pause_us, plans.size(), hold.paused_because,
                 source_phases.background_snapshot_us);
  }
  Status made = RunForkPlans(plans, plugin);
  for (ForkPlan& plan : plans) plan.outcome.source_clock = clock_outcome;
  return made;
}

}  // namespace fe::engine
