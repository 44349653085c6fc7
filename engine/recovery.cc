// Recovery at Open(): rebuilds the in-memory instances from their metadata and removes what a crash
// left half-made. Every action is one line of the RecoveryReport and of the log.
//
//   instances/<id>/ without instance.json   an interrupted create, fork or delete: directory removed
//   instance.json in state Creating          an interrupted create or fork: volume, lease, dir removed
//   instance.json that does not parse        reported and kept, with its volume and lease: data we
//                                            cannot understand is never destroyed
//   Running, but its process is gone         becomes Stopped (host reboot, VM crashed or killed)
//   a volume no instance owns                removed (an interrupted delete, or a clone whose intent
//                                            was already removed)
//   a lease no instance owns                 released
//   a hidden temporary tree of the backend   removed (a clone or removal cut short: Backend::RemoveLeftovers)
//   a TAP of an instance whose VM is not   removed (with manage_taps): a crash between a VM's end and
//   running (or of a removed lease)        its TAP's removal
//   a pool release past the journal's        applied first: the member's metadata gets its new name and
//   checkpoint                               leaves the pool (release_checkpoint.cc)
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "engine/engine.h"
#include "engine/network/tap_device.h"
#include "engine/vm/vm_runner.h"

namespace fe::engine {

Status Engine::Recover() {
  auto note = [this](std::string action) {
    spdlog::warn("recovery: {}", action);
    recovery_.actions.push_back(std::move(action));
  };
  FE_RETURN_IF_ERROR(ReplayReleases());
  const std::map<std::string, hypervisor::NetworkIdentity> leases_at_start = network_->Leases();
  Result<std::vector<std::string>> ids = store_.ListIds();
  if (!ids.ok()) return ids.status().Annotate("recovering instances");

  std::set<std::string> owned;  // ids (= volume names and lease holders) that must be kept
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
      note("kept " + store_.Dir(id) + " untouched, with its volume and lease: unreadable metadata (" +
           read.status().message() + "); repair or remove it by hand");
      continue;
    }
    Instance instance = std::move(*read);
    if (instance.state == InstanceState::kCreating) {
      Status volume = backend_->Remove(instance.volume);
      if (volume.code() == ErrorCode::kNotFound) volume = Status::Ok();
      Status lease = network_->Release(instance.id);
      Status dir = volume.ok() ? store_.Remove(instance.id) : volume;
      if (volume.ok() && lease.ok() && dir.ok()) {
        note("removed half-made instance " + instance.id + " ('" + instance.name + "', state Creating" +
             (instance.parent_id.empty() ? "" : ", fork of " + instance.parent_id) + "): volume, lease and metadata");
      } else {
        owned.insert(instance.id);  // retried at the next start
        note("could not remove half-made instance " + instance.id + ": " +
             (!volume.ok()  ? volume
              : !lease.ok() ? lease
                            : dir)
                 .ToString());
      }
      continue;
    }
    owned.insert(instance.id);
    owned.insert(instance.volume);
    if (instance.state == InstanceState::kRunning && !(instance.process && vm::VmProcessAlive(*instance.process))) {
      instance.state = InstanceState::kStopped;
      instance.process.reset();
      instance.updated_at = clock_.WallNowRfc3339();
      Status written = store_.Write(instance);
      note(written.ok()
               ? "instance " + instance.id + " ('" + instance.name +
                     "') was Running but its process is gone: now Stopped"
               : "instance " + instance.id + " lost its process; recording Stopped failed: " + written.ToString());
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

  Result<std::vector<std::string>> leftovers = backend_->RemoveLeftovers();
  if (!leftovers.ok()) return leftovers.status().Annotate("recovering volumes");
  for (const std::string& leftover : *leftovers) {
    note("removed " + backend_->Root() + "/" + leftover + ": the temporary tree of an interrupted clone or removal");
  }
  Result<std::vector<std::string>> volumes = backend_->List();
  if (!volumes.ok()) return volumes.status().Annotate("recovering volumes");
  for (const std::string& volume : *volumes) {
    if (owned.count(volume) != 0) continue;
    Status removed = backend_->Remove(volume);
    note(removed.ok() ? "removed orphan volume " + backend_->Path(volume) + " (no instance owns it)"
                      : "could not remove orphan volume " + backend_->Path(volume) + ": " + removed.ToString());
  }
  for (const auto& [holder, identity] : network_->Leases()) {
    if (owned.count(holder) != 0) continue;
    Status released = network_->Release(holder);
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

}  // namespace fe::engine
