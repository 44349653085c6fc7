// Recovery at Open(): rebuilds the in-memory instances from their metadata and removes what a crash
// left half-made. Every action is one line of the RecoveryReport and of the log.
//
//   a temporary file of an atomic writer    removed ("<name>.tmp-XXXXXX" in the data root, each
//                                           instance's directory, network/, pools/, groups/, and the
//                                           volumes: a write cut short)
//   instances/<id>/ without instance.json   an interrupted create, fork or delete: directory removed
//   instance.json in state Creating          an interrupted create or fork: volume, lease, dir removed
//   instance.json that does not parse        quarantined: instances/<id> moved to quarantine/<id>,
//                                            its volume and lease kept, reported in GET /v1/healthz:
//                                            data we cannot understand is never destroyed; moving it
//                                            back once repaired restores it at the next start
//   Running, but its process is gone         becomes Stopped (host reboot, VM crashed or killed)
//   a fan-out record (groups/<id>.json)      a fan-out that was never answered: every member it lists
//                                            is removed (stopped first when Running), then the record
//   a volume no instance owns                removed (an interrupted delete, or a clone whose intent
//                                            was already removed)
//   a lease no instance owns                 released
//   a hidden temporary tree of the backend   removed (a clone or removal cut short: Backend::RemoveLeftovers)
//   a TAP of an instance whose VM is not   removed (with manage_taps): a crash between a VM's end and
//   running (or of a removed lease)        its TAP's removal
//   a pool release past the journal's        applied first: the member's metadata gets its new name and
//   checkpoint                               leaves the pool (release_checkpoint.cc)
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "base/atomic_file.h"
#include "base/confined_dir.h"
#include "base/fs_util.h"
#include "base/unique_fd.h"
#include "engine/data_root.h"
#include "engine/engine.h"
#include "engine/fan_out_record.h"
#include "engine/network/tap_device.h"
#include "engine/vm/vm_runner.h"

namespace fe::engine {

Status Engine::Recover() {
  auto note = [this](std::string action) {
    spdlog::warn("recovery: {}", action);
    recovery_.actions.push_back(std::move(action));
  };
  RemoveTemporaryFiles(note);
  FE_RETURN_IF_ERROR(ReplayReleases());
  const std::map<std::string, hypervisor::NetworkIdentity> leases_at_start = network_->Leases();
  Result<std::vector<std::string>> ids = store_.ListIds();
  if (!ids.ok()) return ids.status().Annotate("recovering instances");

  std::set<std::string> owned;  // ids (lease holders) that must be kept
  // Volumes that must be kept: each instance's (its id, or another name after a roll back to a
  // snapshot), and those of quarantined ids, whose metadata cannot say which: "<id>" and "<id>-r…".
  std::set<std::string> owned_volumes;
  ListQuarantined(owned);
  std::set<std::string> quarantined = owned;
  auto kept = [&](const std::string& volume) {
    if (owned_volumes.count(volume) != 0) return true;
    const size_t rolled = volume.rfind("-r");
    return quarantined.count(volume) != 0 ||
           (rolled != std::string::npos && quarantined.count(volume.substr(0, rolled)) != 0);
  };
  for (const std::string& id : *ids) {
    Result<Instance> read = store_.Read(id);
    if (!read.ok() && read.status().code() == ErrorCode::kNotFound) {
      Status removed = store_.Remove(id);
      note(removed.ok() ? "removed " + store_.Dir(id) + ": no metadata (an interrupted create, fork or delete)"
                        : "could not remove " + store_.Dir(id) + " (no metadata): " + removed.ToString());
      continue;
    }
    if (!read.ok()) {
      owned.insert(id);
      quarantined.insert(id);
      Quarantine(id, read.status().message(), note);
      continue;
    }
    Instance instance = std::move(*read);
    if (instance.state == InstanceState::kCreating) {
      Status volume = backend_->Remove(instance.volume);
      if (volume.code() == ErrorCode::kNotFound) volume = Status::Ok();
      Status lease = ReleaseLease(instance.id);
      Status dir = volume.ok() ? store_.Remove(instance.id) : volume;
      if (volume.ok() && lease.ok() && dir.ok()) {
        note("removed half-made instance " + instance.id + " ('" + instance.name + "', state Creating" +
             (instance.parent_id.empty() ? "" : ", fork of " + instance.parent_id) + "): volume, lease and metadata");
      } else {
        owned.insert(instance.id);  // retried at the next start
        owned_volumes.insert(instance.volume);
        note("could not remove half-made instance " + instance.id + ": " +
             (!volume.ok()  ? volume
              : !lease.ok() ? lease
                            : dir)
                 .ToString());
      }
      continue;
    }
    owned.insert(instance.id);
    owned_volumes.insert(instance.volume);
    if (instance.state == InstanceState::kRunning && !(instance.process && vm::VmProcessAlive(*instance.process))) {
      instance.state = InstanceState::kStopped;
      instance.process.reset();
      instance.shared_memory.reset();  // nothing maps its template's file any more
      instance.updated_at = clock_.WallNowRfc3339();
      Status written = store_.Write(instance);
      note(written.ok()
               ? "instance " + instance.id + " ('" + instance.name +
                     "') was Running but its process is gone: now Stopped"
               : "instance " + instance.id + " lost its process; recording Stopped failed: " + written.ToString());
    } else if (instance.state == InstanceState::kRunning) {
      // A forkd killed during a live fork's pre-flush left the source CPU-throttled (engine/vm/cpu_throttle.h).
      if (Status released = vm::ReleaseLeftoverThrottle(instance.process->pid); !released.ok()) {
        note("instance " + instance.id + " may still be CPU-throttled: " + released.ToString());
      }
    }
    auto entry = std::make_shared<Entry>();
    entry->instance = instance;
    std::lock_guard lock(mutex_);
    auto [name, inserted] = names_.emplace(instance.name, instance.id);
    if (!inserted) {
      note("instance " + instance.id + " has the name '" + instance.name + "' of " + name->second +
           ": reachable by id only");
    }
    entries_.emplace(instance.id, std::move(entry));
  }

  UndoUnansweredFanOuts(note);

  Result<std::vector<std::string>> leftovers = backend_->RemoveLeftovers();
  if (!leftovers.ok()) return leftovers.status().Annotate("recovering volumes");
  for (const std::string& leftover : *leftovers) {
    note("removed " + backend_->Root() + "/" + leftover + ": the temporary tree of an interrupted clone or removal");
  }
  Result<std::vector<std::string>> volumes = backend_->List();
  if (!volumes.ok()) return volumes.status().Annotate("recovering volumes");
  for (const std::string& volume : *volumes) {
    if (kept(volume)) {
      Result<ConfinedDir> dir = ConfinedDir::Open(backend_->Path(volume));
      Result<std::vector<std::string>> removed = dir.ok() ? fe::RemoveTemporaryFiles(*dir, 8) : dir.status();
      if (removed.ok()) {
        for (const std::string& file : *removed) note("removed " + dir->PathOf(file) + ": a write cut short");
      }
      continue;
    }
    Status removed = backend_->Remove(volume);
    note(removed.ok() ? "removed orphan volume " + backend_->Path(volume) + " (no instance owns it)"
                      : "could not remove orphan volume " + backend_->Path(volume) + ": " + removed.ToString());
  }
  for (const auto& [holder, identity] : network_->Leases()) {
    if (owned.count(holder) != 0) continue;
    Status released = ReleaseLease(holder);
    note(released.ok() ? "released orphan lease of " + holder + " (" + identity.ipv4 + ", no instance owns it)"
                       : "could not release the lease of " + holder + ": " + released.ToString());
  }
  if (config_.manage_taps) {
    std::set<std::string> running;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [id, entry] : entries_) {
        if (entry->instance.state == InstanceState::kRunning) running.insert(id);
      }
    }
    for (const auto& [holder, identity] : leases_at_start) {
      if (running.count(holder) != 0) continue;
      if (identity.tap_device.empty() || !network::NetworkDeviceExists(identity.tap_device)) continue;
      Status deleted = network::DeleteTap(identity.tap_device);
      note(deleted.ok() ? "removed TAP " + identity.tap_device + " of " + holder + ": no running VM uses it"
                        : "could not remove TAP " + identity.tap_device + " of " + holder + ": " + deleted.ToString());
    }
  }
  spdlog::info("recovery: {} instances, {} actions", entries_.size(), recovery_.actions.size());
  return Status::Ok();
}

void Engine::RemoveTemporaryFiles(const std::function<void(std::string)>& note) {
  const DataRoot layout(config_.data_root);
  // Each directory with the depth its atomic writers write at (instances/<id>/instance.json: 1);
  // requests/ is forkd's (Idempotency-Key records), swept here with the rest of the layout.
  const std::pair<std::string, size_t> dirs[] = {{layout.path(), 0},  {layout.Instances(), 1}, {layout.Network(), 0},
                                                 {layout.Pools(), 0}, {layout.FanOuts(), 0},   {layout.Requests(), 0}};
  for (const auto& [path, depth] : dirs) {
    Result<ConfinedDir> dir = ConfinedDir::Open(path);
    if (!dir.ok()) continue;  // not made yet
    Result<std::vector<std::string>> removed = fe::RemoveTemporaryFiles(*dir, depth);
    if (!removed.ok()) {
      note("could not remove temporary files in " + path + ": " + removed.status().ToString());
      continue;
    }
    for (const std::string& file : *removed) note("removed " + dir->PathOf(file) + ": a write cut short");
  }
}

void Engine::Quarantine(const std::string& id, const std::string& reason,
                        const std::function<void(std::string)>& note) {
  const DataRoot layout(config_.data_root);
  const std::string target = JoinPath(layout.Quarantine(), id);
  Status moved = MakeDirectories(layout.Quarantine(), 0700);
  if (moved.ok() && ::rename(store_.Dir(id).c_str(), target.c_str()) != 0) {
    moved = Status::FromErrno(errno, "move " + store_.Dir(id) + " to", target);
  }
  if (!moved.ok()) {
    note("kept " + store_.Dir(id) + " untouched, with its volume and lease: unreadable metadata (" + reason +
         "); moving it to quarantine failed: " + moved.ToString());
    recovery_.quarantined.push_back({id, store_.Dir(id), reason});
    return;
  }
  if (Status reason_written = ReplaceFileDurably(JoinPath(target, "QUARANTINED"), reason + "\n", 0600);
      !reason_written.ok()) {
    note("could not record why " + target + " is quarantined: " + reason_written.ToString());
  }
  recovery_.quarantined.push_back({id, target, reason});
  note("quarantined instance " + id + " in " + target + ", with its volume and lease kept: unreadable metadata (" +
       reason + "); repair its instance.json and move the directory back to " + layout.Instances());
}

void Engine::ListQuarantined(std::set<std::string>& owned) {
  const std::string dir = DataRoot(config_.data_root).Quarantine();
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return;
  std::vector<DirectoryEntry> entries;
  if (!ReadDirectory(fd.get(), entries, dir).ok()) return;
  for (const DirectoryEntry& entry : entries) {
    const std::string path = JoinPath(dir, entry.name);
    Result<std::string> reason = ReadSmallFile(JoinPath(path, "QUARANTINED"));
    std::string text = reason.ok() ? *reason : "unreadable metadata";
    while (!text.empty() && text.back() == '\n') text.pop_back();
    owned.insert(entry.name);  // its volume and lease stay until an operator decides
    recovery_.quarantined.push_back({entry.name, path, text});
  }
  std::sort(recovery_.quarantined.begin(), recovery_.quarantined.end(),
            [](const QuarantinedInstance& a, const QuarantinedInstance& b) { return a.id < b.id; });
}

void Engine::UndoUnansweredFanOuts(const std::function<void(std::string)>& note) {
  Result<std::vector<FanOutRecord::Unfinished>> records = FanOutRecord::List(DataRoot(config_.data_root).FanOuts());
  if (!records.ok()) {
    note("could not read the fan-out records: " + records.status().ToString());
    return;
  }
  for (const FanOutRecord::Unfinished& record : *records) {
    if (!record.unreadable.empty()) {
      note("kept " + record.path + ": " + record.unreadable);
      continue;
    }
    bool all_removed = true;
    for (const std::string& id : record.member_ids) {
      std::shared_ptr<Entry> entry;
      {
        std::lock_guard lock(mutex_);
        auto found = entries_.find(id);
        if (found != entries_.end()) entry = found->second;
      }
      if (!entry) continue;  // never made, or removed already (Creating)
      Status removed = Status::Ok();
      if (Read(entry).state == InstanceState::kRunning) removed = StopLocked(entry).status();
      if (removed.ok()) removed = DestroyLocked(entry);
      all_removed = all_removed && removed.ok();
      note(removed.ok() ? "removed " + id + ": a member of a fan-out that was never answered (" + record.path + ")"
                        : "could not remove " + id + ", a member of the unanswered fan-out " + record.path + ": " +
                              removed.ToString());
    }
    if (!all_removed) continue;  // retried at the next start
    if (Status removed = FanOutRecord::Remove(record.path); !removed.ok()) note(removed.ToString());
  }
}

}  // namespace fe::engine
