// Shared-memory forks: a fork whose guest RAM is its template's snapshot memory file, mapped privately.
//
// Reflinked RAM files share disk blocks but not page cache (one page cache per inode): N forks each
// with a RAM file of its own load the template's pages N times. A shared-memory fork instead maps the
// template's file itself, copy-on-write (hypervisor::MemorySource: QEMU share=off with the device
// state loaded under x-ignore-shared, firecracker's MAP_PRIVATE load), so the pages it never writes
// are one copy for every fork. Its own clone of the memory file is removed: it never reads it.
//
// The template's file must then never change while anything maps it:
//  - it is made read-only (mode 0444) when the first fork maps it;
//  - the template cannot be restored, started or deleted while an instance records it
//    (Instance::shared_memory): FailedPrecondition naming those instances. Stop, stand by or delete
//    them first. (A template is Standby: nothing else writes its snapshot.)
//  - only a Standby source can be shared: a Running one keeps writing its RAM.
// A fork's record is dropped when its RAM becomes its own: it stops (the next boot starts fresh), or
// stands by (the snapshot of a VM whose RAM is a private mapping holds the RAM in full, in the fork's
// own files). The record is in its metadata, so a restarted forkd knows every mapped file.
//
// A Standby shared fork that never ran has no memory file of its own: its forks map the same template
// file (the record is inherited), and a private fork of it is refused until it has run.
#include <fcntl.h>
#include <sys/stat.h>

#include <spdlog/spdlog.h>

#include "base/confined_dir.h"
#include "engine/fork_plan.h"
#include "snapshot/path_rewrite.h"

namespace fe::engine {
namespace {

// `path` relative to `dir` when it lies beneath it and has no "." or ".." component.
std::optional<std::string> RelativeBeneath(const std::string& dir, const std::string& path) {
  if (!snapshot::IsBeneath(path, dir) || !snapshot::IsNormalizedPath(path)) return std::nullopt;
  return path.substr(dir.size() + 1);
}

}  // namespace

Result<std::optional<SharedMemory>> Engine::SharedMemoryFor(const Instance& source, const hypervisor::Plugin& plugin,
                                                            MemoryMode mode, bool source_running,
                                                            InstanceState target) const {
  const std::string what = "fork of '" + source.name + "' with memory \"" + std::string(MemoryModeName(mode)) + "\"";
  const bool from_snapshot = source.state == InstanceState::kStandby && target != InstanceState::kStopped;
  if (mode == MemoryMode::kPrivate) {
    if (from_snapshot && !source_running && source.shared_memory) {
      return Status::FailedPrecondition(what + ": its snapshot's RAM is the memory file of instance '" +
                                        source.shared_memory->instance_id +
                                        "' (it has not run since it was forked, so it has none of its own): fork it "
                                        "with memory \"shared\", or restore it first");
    }
    return std::optional<SharedMemory>();
  }
  if (target == InstanceState::kStopped) {
    return Status::InvalidArgument(what +
                                   ": a Stopped fork boots with fresh RAM; shared memory needs a fork "
                                   "restored from the snapshot (target_state Running or Standby)");
  }
  if (source_running) {
    return Status::FailedPrecondition(what +
                                      ": it is Running and keeps writing its RAM, which forks would map; "
                                      "stand it by first (a Standby template's memory stays as its snapshot "
                                      "left it)");
  }
  if (source.state != InstanceState::kStandby) {
    return Status::FailedPrecondition(what + ": it is " + std::string(InstanceStateName(source.state)) +
                                      " and has no snapshot memory to map (shared memory needs a Standby source)");
  }
  if (source.shared_memory) return std::optional<SharedMemory>(source.shared_memory);

  const std::string guest_dir = GuestDir(source);
  Result<std::string> file = plugin.SnapshotMemoryFile(guest_dir);
  if (!file.ok()) return file.status().Annotate(what);
  // The plugin read the guest directory's own files: the path is checked to lie in the volume and to
  // be a regular file there (resolved beneath it) before any fork maps it.
  std::optional<std::string> relative = RelativeBeneath(guest_dir, *file);
  if (!relative) {
    return Status::InvalidArgument(what + ": the snapshot's memory file " + *file + " is not in " + guest_dir);
  }
  Result<ConfinedDir> dir = ConfinedDir::Open(guest_dir);
  if (!dir.ok()) return dir.status().Annotate(what);
  if (!dir->IsRegularFile(*relative)) {
    return Status::NotFound(what + ": the snapshot's memory file " + *file + " is not a regular file");
  }
  Result<UniqueFd> fd = dir->OpenFile(*relative, O_RDONLY | O_CLOEXEC);
  if (!fd.ok()) return fd.status().Annotate(what);
  if (::fchmod(fd->get(), 0444) != 0) return Status::FromErrno(errno, what + ": chmod 0444", *file);
  return std::optional<SharedMemory>(SharedMemory{source.id, *file});
}

bool Engine::CanShareMemory(const std::string& id_or_name) const {
  Result<Instance> source = Get(id_or_name);
  if (!source.ok() || source->state != InstanceState::kStandby) return false;
  if (source->shared_memory) return true;
  Result<const hypervisor::Plugin*> plugin = PluginFor(*source);
  if (!plugin.ok() || !(*plugin)->Capabilities().shared_memory) return false;
  return (*plugin)->SnapshotMemoryFile(GuestDir(*source)).ok();
}

Status Engine::CheckMemoryNotMapped(const Instance& instance, std::string_view operation) const {
  std::vector<std::string> mappers;
  std::string file;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, entry] : entries_) {
      const std::optional<SharedMemory>& shared = entry->instance.shared_memory;
      if (!shared || shared->instance_id != instance.id) continue;
      mappers.push_back(entry->instance.name);
      file = shared->file;
    }
  }
  if (mappers.empty()) return Status::Ok();
  std::string names;
  for (size_t i = 0; i < mappers.size() && i < 10; ++i) names += (i == 0 ? "'" : ", '") + mappers[i] + "'";
  if (mappers.size() > 10) names += " and " + std::to_string(mappers.size() - 10) + " more";
  const std::string what = instance.snapshot_mark
                               ? "snapshot '" + instance.snapshot_mark->name + "' (" + instance.id + ")"
                               : "instance '" + instance.name + "'";
  return Status::FailedPrecondition("cannot " + std::string(operation) + " " + what + ": " +
                                    std::to_string(mappers.size()) + " instance(s) map its memory file " + file + " (" +
                                    names + "); stop, stand by or delete them first");
}

Status Engine::DropUnusedMemoryCopy(ForkPlan& plan, const hypervisor::Plugin& plugin) {
  const std::string guest_dir = GuestDir(plan.fork);
  Result<std::string> own = plugin.SnapshotMemoryFile(guest_dir);
  if (!own.ok()) return plan.Failed("memory", own.status());
  std::optional<std::string> relative = RelativeBeneath(guest_dir, *own);
  if (!relative) return plan.Failed("memory", Status::InvalidArgument(*own + " is not in " + guest_dir));
  Result<ConfinedDir> dir = ConfinedDir::Open(guest_dir);
  if (!dir.ok()) return plan.Failed("memory", dir.status());
  if (Status removed = dir->Remove(*relative); !removed.ok()) return plan.Failed("memory", removed);
  return Status::Ok();
}

}  // namespace fe::engine
