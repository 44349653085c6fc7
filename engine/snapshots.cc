// Snapshots as objects (issue #23): taken through the fork pipeline, so a snapshot is crash-safe as
// a fork is (an intent recovery removes, one sync, a rename) and shares its blocks with its instance
// by the backend's clone (reflink, btrfs snapshot, dm-thin snapshot). Its record is marked
// (Instance::snapshot_mark): instance lookups do not find it and it never runs.
#include <spdlog/spdlog.h>

#include "engine/fork_plan.h"

namespace fe::engine {
namespace {

Status SnapshotNotFound(const std::string& id) { return Status::NotFound("snapshot '" + id + "' not found"); }

// A roll back's new volume beside the instance's: "<id>-r<8 hex>" (recovery keeps "<id>-r…" of a
// quarantined id).
std::string RolledVolumeName(const std::string& id) { return id + "-r" + NewInstanceId().substr(2, 8); }

}  // namespace

Result<ForkOutcome> Engine::TakeSnapshot(const std::string& id_or_name, const SnapshotRequest& request) {
  if (Status name = ValidateInstanceName(request.name); !name.ok()) {
    return Status::InvalidArgument("field 'name': " + name.message());
  }
  std::shared_ptr<Entry> entry = FindEntry(id_or_name);
  if (!entry) return Status::NotFound("instance '" + id_or_name + "' not found");
  const Instance instance = Read(entry);
  const std::pair<std::string, std::string> claim{instance.id, request.name};
  {
    std::lock_guard lock(mutex_);
    bool taken = snapshot_names_taken_.count(claim) != 0;
    for (const auto& [id, other] : entries_) {
      const std::optional<SnapshotMark>& mark = other->instance.snapshot_mark;
      taken = taken || (!other->deleted && mark && mark->instance_id == instance.id && mark->name == request.name);
    }
    if (taken) {
      return Status::AlreadyExists("instance '" + instance.name + "' has a snapshot named '" + request.name + "'");
    }
    snapshot_names_taken_.insert(claim);
  }
  struct ReleaseClaim {
    Engine* engine;
    std::pair<std::string, std::string> claim;
    ~ReleaseClaim() {
      std::lock_guard lock(engine->mutex_);
      engine->snapshot_names_taken_.erase(claim);
    }
  } release{this, claim};

  const std::string id = NewSnapshotId();
  ForkRequest fork;
  fork.name = id;
  fork.from_running = true;  // a Running instance is snapshotted as a from_running fork: live where it can be
  fork.labels = request.labels;
  fork.preflush = request.preflush;
  ForkKind kind;
  kind.snapshot = SnapshotMark{.name = request.name, .instance_id = instance.id, .instance_name = instance.name};
  kind.snapshot_id = id;
  Result<std::vector<ForkOutcome>> made = RunFork(instance.id, fork, kind);
  if (!made.ok()) return made.status().Annotate("snapshot '" + request.name + "' of '" + instance.name + "'");
  spdlog::info("snapshot {} ('{}') of {} ('{}') taken in {:.3f} ms ({})", id, request.name, instance.id, instance.name,
               made->front().phases.total_us / 1000.0, made->front().mechanism);
  return std::move(made->front());
}

Result<Instance> Engine::GetSnapshot(const std::string& snapshot_id) const {
  std::shared_ptr<Entry> entry = FindEntry(snapshot_id, EntryKind::kSnapshot);
  if (!entry) return SnapshotNotFound(snapshot_id);
  return Read(entry);
}

Status Engine::DeleteSnapshot(const std::string& snapshot_id) {
  std::shared_ptr<Entry> entry = FindEntry(snapshot_id, EntryKind::kSnapshot);
  if (!entry) return SnapshotNotFound(snapshot_id);
  FE_ASSIGN_OR_RETURN(ExclusiveLock lock, AcquireExclusive(*entry, snapshot_id));
  {
    std::lock_guard guard(mutex_);
    if (entry->deleted) return SnapshotNotFound(snapshot_id);
  }
  // As an instance's delete: refused while forks map its memory file, then destroyed, the reserve refilled.
  return DeleteLocked(entry, snapshot_id);
}

Result<std::vector<ForkOutcome>> Engine::ForkSnapshot(const std::string& snapshot_id, const ForkRequest& request) {
  if (request.from_running) {
    return Status::InvalidArgument("field 'from_running': a snapshot never runs; fork it without from_running");
  }
  ForkKind kind;
  kind.source = EntryKind::kSnapshot;
  return ForkAndPublish(snapshot_id, request, kind);
}

Result<Instance> Engine::RollBack(const std::string& id_or_name, const std::string& snapshot_id) {
  std::shared_ptr<Entry> snapshot_entry = FindEntry(snapshot_id, EntryKind::kSnapshot);
  if (!snapshot_entry) return SnapshotNotFound(snapshot_id);
  FE_ASSIGN_OR_RETURN(auto locked, LockExclusive(id_or_name));
  auto& [entry, lock] = locked;
  // Instance first, then its snapshot: a snapshot's own lockers (its forks, its delete) never hold an
  // instance's lock while they wait for it.
  FE_ASSIGN_OR_RETURN(SharedLock snapshot_lock, AcquireShared(*snapshot_entry, snapshot_id));
  Instance instance = Read(entry);
  const Instance snapshot = Read(snapshot_entry);
  {
    std::lock_guard guard(mutex_);
    if (snapshot_entry->deleted) return SnapshotNotFound(snapshot_id);
  }
  const std::string what = "rolling '" + instance.name + "' back to snapshot '" + snapshot.snapshot_mark->name + "'";
  if (snapshot.snapshot_mark->instance_id != instance.id) {
    return Status::FailedPrecondition(what + ": it is a snapshot of " + snapshot.snapshot_mark->instance_id + " ('" +
                                      snapshot.snapshot_mark->instance_name + "'), not of " + instance.id);
  }
  if (instance.template_mark) {
    return Status::FailedPrecondition(what + ": it is a template, whose files never change");
  }
  // Its volume goes away: forks mapping its memory file would lose their RAM's backing file.
  FE_RETURN_IF_ERROR(CheckMemoryNotMapped(instance, "roll back"));
  FE_ASSIGN_OR_RETURN(const hypervisor::Plugin* plugin, PluginFor(instance));
  if (instance.state == InstanceState::kRunning) {
    Result<Instance> stopped = StopLocked(entry);
    if (!stopped.ok()) return stopped.status().Annotate(what + ": stop");
    instance = *stopped;
  }

  // The snapshot's clone under a new volume name; the instance's metadata then names it (the commit),
  // and only then is the old volume removed. A crash before the commit leaves an orphan clone, after
  // it the old volume: recovery removes either (no instance owns it).
  Reverter undo;
  const std::string volume = RolledVolumeName(instance.id);
  Result<storage::CloneReport> cloned = backend_->Clone(snapshot.volume, volume);
  if (!cloned.ok()) return cloned.status().Annotate(what + ": clone");
  undo.Add("remove volume " + volume, [this, volume] { return backend_->Remove(volume); });
  hypervisor::ForkSpec spec;
  spec.source_dir = GuestDir(snapshot);
  spec.target_dir = backend_->Path(volume);
  spec.source_identity = snapshot.identity;
  spec.target_identity = instance.identity;
  spec.from_snapshot = snapshot.state == InstanceState::kStandby;
  spec.guarded_dirs = GuardedDirs();
  spec.keeps_identity = true;
  Result<hypervisor::PreparedFork> prepared = plugin->PrepareFork(spec);
  if (!prepared.ok()) return prepared.status().Annotate(what + ": rewrite");

  Instance rolled = instance;
  const std::string old_volume = instance.volume;
  rolled.volume = volume;
  rolled.state = snapshot.state;
  rolled.process.reset();
  rolled.guest_mac = snapshot.guest_mac;
  rolled.identity_generation = snapshot.identity_generation;
  rolled.identity_channel = prepared->restore.identity_channel;
  rolled.shared_memory = snapshot.shared_memory;
  FE_RETURN_IF_ERROR(Commit(entry, rolled).Annotate(what + ": metadata"));
  undo.Commit();
  if (Status removed = backend_->Remove(old_volume); !removed.ok()) {
    spdlog::warn("{}: the old volume {} is left, removed at the next start: {}", what, old_volume, removed.ToString());
  }
  spdlog::info("rolled {} ('{}') back to snapshot {} ('{}'), taken {}", instance.id, instance.name, snapshot.id,
               snapshot.snapshot_mark->name, InstanceStateName(snapshot.snapshot_mark->taken_in));
  if (snapshot.snapshot_mark->taken_in == InstanceState::kRunning) {
    Result<Instance> running = RestoreLocked(entry);
    if (!running.ok()) return running.status().Annotate(what + ": restore (it stays Standby, at the snapshot)");
  }
  return Read(entry);
}

}  // namespace fe::engine
