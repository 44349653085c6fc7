// Fork: validation, the source's lock, from_running's standby and restore of the source, the per-fork
// steps (each undone in reverse on failure) and the all-or-nothing fan-out of count > 1.
//
// Target states. A Stopped source gives Stopped (default) or Running (booted) forks. A Standby source
// gives Standby (default: the fork restores from its copy of the snapshot), Running (restored now) or
// Stopped forks (the copied snapshot stays but the fork boots from its config, as a fresh VM). A
// Running source (from_running=true) gives what a Standby source gives; its default is Running, like
// the source. It is forked by the live path when it can be (engine/live_fork.cc: paused for the
// snapshot and the clones, never stopped), else put into standby and restored afterwards.
//
// Identity. A fork restored from a snapshot wakes up with the guest identity of its source: it
// records that MAC (guest_mac) and the source's identity_generation, and its first restore hands the
// guest its own identity (lifecycle.cc). A booted fork's guest takes the MAC of its rewritten config.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "engine/engine.h"
#include "base/reverter.h"
#include "base/deferred_sync.h"

namespace fe::engine {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMaxForkCount = 64;
constexpr int kMaxParallelForks = 8;

int64_t MicrosSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
}

Result<std::vector<std::string>> ForkNames(const ForkRequest& request) {
  if (request.count < 1 || request.count > kMaxForkCount) {
    return Status::InvalidArgument("fork count " + std::to_string(request.count) + " is not 1.." + std::to_string(kMaxForkCount));
  }
  if (request.target_state == InstanceState::kCreating) return Status::InvalidArgument("target_state Creating is not a state to fork into");
  std::vector<std::string> names;
  if (request.count == 1) {
    names.push_back(request.name);
  } else {
    for (int i = 1; i <= request.count; ++i) names.push_back(request.name + "-" + std::to_string(i));
  }
  for (const std::string& name : names) FE_RETURN_IF_ERROR(ValidateInstanceName(name));
  return names;
}

// What a fork of a source in `state` may become (see the file comment).
Result<InstanceState> TargetState(const Instance& source, InstanceState state, const ForkRequest& request,
                                  bool was_running) {
  InstanceState target = request.target_state.value_or(was_running ? InstanceState::kRunning : state);
  if (state == InstanceState::kStopped && target == InstanceState::kStandby) {
    return Status::FailedPrecondition("cannot fork Stopped instance '" + source.name +
                                                      "' into Standby: it has no snapshot (target Stopped or Running)");
  }
  return target;
}

Status CheckSharedVolumes(const Instance& source) {
  for (const AttachedVolume& volume : source.attached_volumes) {
    if (!volume.read_only) {
      return Status::FailedPrecondition("cannot fork instance '" + source.name + "': it has the writable volume " + volume.path +
                        " attached, and two VMs must never write one disk (attach it read-only or detach it)");
    }
  }
  return Status::Ok();
}

void LogFork(const ForkOutcome& outcome, const Instance& source) {
  const ForkPhases& p = outcome.phases;
  spdlog::info("fork {} ('{}') of {} ('{}') {}{}: lock_wait {}us standby {}us pause {}us clone {}us ({}) "
               "rewrite {}us metadata {}us restore {}us (identity {}us) total {}us",
               outcome.instance.id, outcome.instance.name, source.id, source.name,
               InstanceStateName(outcome.instance.state), outcome.live ? " (live)" : "", p.lock_wait_us,
               p.source_standby_us, p.source_pause_us, p.clone_us, outcome.mechanism, p.rewrite_us, p.metadata_us,
               p.restore_us, p.identity_us, p.total_us);
}

}  // namespace

Result<std::vector<ForkOutcome>> Engine::Fork(const std::string& source_id_or_name, const ForkRequest& request) {
  const Clock::time_point started = Clock::now();
  Result<std::vector<std::string>> names = ForkNames(request);
  if (!names.ok()) return names.status();
  std::shared_ptr<Entry> entry = FindEntry(source_id_or_name);
  if (!entry) return Status::NotFound("instance '" + source_id_or_name + "' not found");
  Instance source = Read(entry);
  FE_RETURN_IF_ERROR(CheckSharedVolumes(source));
  if (source.state == InstanceState::kRunning && !request.from_running) {
    return Status::FailedPrecondition("instance '" + source.name + "' is Running: pass from_running=true to fork it (it is put into "
                  "standby for the fork and restored afterwards)");
  }

  // Names are reserved before waiting for the lock, so two requests can never both take one.
  std::vector<std::pair<std::string, std::string>> reserved;
  {
    std::lock_guard lock(mutex_);
    for (const std::string& name : *names) {
      if (names_.count(name) != 0) return Status::AlreadyExists("instance name '" + name + "' is taken");
    }
    for (const std::string& name : *names) {
      reserved.emplace_back(name, NewInstanceId());
      names_.emplace(name, reserved.back().second);
    }
  }
  Reverter reservation;
  reservation.Add("release reserved names", [this, &reserved] {
    ReleaseNames(reserved);
    return Status::Ok();
  });

  // Shared for a source that stays as it is; exclusive when it must go into standby and back.
  std::optional<SharedLock> shared;
  std::optional<ExclusiveLock> exclusive;
  const Clock::time_point lock_start = Clock::now();
  if (source.state == InstanceState::kRunning) {
    Result<ExclusiveLock> lock = AcquireExclusive(*entry, source.name);
    if (!lock.ok()) return lock.status();
    exclusive.emplace(std::move(*lock));
  } else {
    Result<SharedLock> lock = AcquireShared(*entry, source.name);
    if (!lock.ok()) return lock.status();
    shared.emplace(std::move(*lock));
  }
  const int64_t lock_wait_us = MicrosSince(lock_start);
  {
    std::lock_guard lock(mutex_);
    if (entry->deleted) return Status::NotFound("instance '" + source_id_or_name + "' not found");
    source = entry->instance;
  }
  // The state may have changed while we waited.
  if (shared && source.state == InstanceState::kRunning) {
    return Status::FailedPrecondition("instance '" + source.name +
                                                      "' was started while the fork waited for it: retry, with "
                                                      "from_running=true to fork it running");
  }
  const bool was_running = source.state == InstanceState::kRunning;
  const InstanceState forked_state = was_running ? InstanceState::kStandby : source.state;
  Result<InstanceState> target = TargetState(source, forked_state, request, was_running);
  if (!target.ok()) return target.status();
  Result<const hypervisor::Plugin*> plugin = PluginFor(source);
  if (!plugin.ok()) return plugin.status();
  hypervisor::PluginCapabilities capabilities = (*plugin)->Capabilities();
  if (!(forked_state == InstanceState::kStopped ? capabilities.fork_stopped : capabilities.fork_standby)) {
    return Status::Unsupported("hypervisor '" + source.hypervisor + "' cannot fork a " +
                                               std::string(InstanceStateName(forked_state)) + " instance");
  }

  // Makes the forks visible (their names stay taken), completes their phases and logs them.
  auto publish = [&](std::vector<MadeFork>& made, const std::function<void(ForkOutcome&)>& complete) {
    {
      std::lock_guard lock(mutex_);
      for (MadeFork& fork : made) entries_.emplace(fork.outcome.instance.id, fork.entry);
    }
    reservation.Commit();
    std::vector<ForkOutcome> outcomes;
    for (MadeFork& fork : made) {
      fork.outcome.phases.lock_wait_us = lock_wait_us;
      complete(fork.outcome);
      fork.outcome.phases.total_us = MicrosSince(started);
      LogFork(fork.outcome, source);
      outcomes.push_back(std::move(fork.outcome));
    }
    return outcomes;
  };

  const bool live = was_running && CanLiveFork(source, **plugin);
  if (live) {
    int64_t pause_us = 0;
    Result<std::vector<MadeFork>> made = LiveForkLocked(source, reserved, *target, request.pool, pause_us);
    if (!made.ok()) return made.status();
    return publish(*made, [pause_us](ForkOutcome& outcome) {
      outcome.live = true;
      outcome.phases.source_pause_us = pause_us;
    });
  }

  int64_t standby_us = 0;
  if (was_running) {
    const Clock::time_point standby_start = Clock::now();
    Result<Instance> standby = StandbyLocked(entry);
    if (!standby.ok()) return standby.status().Annotate("fork of '" + source.name + "': source standby");
    source = *standby;
    standby_us = MicrosSince(standby_start);
  }

  Result<std::vector<MadeFork>> made = ForkAll(source, reserved, *target, request.pool);

  int64_t restore_source_us = 0;
  if (was_running) {
    // The source goes back to Running on every path, whether the forks worked or not.
    const Clock::time_point restore_start = Clock::now();
    Result<Instance> restored = RestoreLocked(entry);
    restore_source_us = MicrosSince(restore_start);
    if (!restored.ok()) {
      if (made.ok()) {
        for (MadeFork& fork : *made) {
          if (Status destroyed = DestroyLocked(fork.entry); !destroyed.ok()) {
            spdlog::error("fork rollback: removing {} failed: {}", fork.outcome.instance.id, destroyed.ToString());
          }
        }
      }
      return restored.status().Annotate("fork of '" + source.name + "': restoring the source (forks rolled back; "
                                        "the source stays in Standby)");
    }
  }
  if (!made.ok()) return made.status();
  return publish(*made, [standby_us, restore_source_us](ForkOutcome& outcome) {
    outcome.phases.source_standby_us = standby_us;
    outcome.phases.restore_us += restore_source_us;
  });
}

Result<std::vector<Engine::MadeFork>> Engine::ForkAll(const Instance& source,
                                                      const std::vector<std::pair<std::string, std::string>>& names_and_ids,
                                                      InstanceState target_state, const std::string& pool,
                                                      const PreCloned* pre_cloned) {
  const size_t count = names_and_ids.size();
  std::vector<std::optional<Result<MadeFork>>> results(count);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  auto work = [&] {
    for (size_t i = next++; i < count && !failed; i = next++) {
      const auto& [name, id] = names_and_ids[i];
      results[i].emplace(ForkOne(source, name, target_state, id, pool, pre_cloned));
      if (!results[i]->ok()) failed = true;  // no new forks are started; the made ones are removed
    }
  };
  const size_t workers = std::min<size_t>(count, kMaxParallelForks);
  if (workers <= 1) {
    work();
  } else {
    std::vector<std::thread> threads;
    for (size_t i = 1; i < workers; ++i) threads.emplace_back(work);
    work();
    for (std::thread& thread : threads) thread.join();
  }

  std::optional<Status> first_failure;
  for (std::optional<Result<MadeFork>>& result : results) {
    if (result && !result->ok() && !first_failure) first_failure = result->status();
  }
  if (!first_failure) {
    std::vector<MadeFork> made;
    for (std::optional<Result<MadeFork>>& result : results) made.push_back(std::move(**result));
    return made;
  }
  for (std::optional<Result<MadeFork>>& result : results) {
    if (!result || !result->ok()) continue;
    std::shared_ptr<Entry> fork = (*result)->entry;
    if (Read(fork).state == InstanceState::kRunning) {
      if (Result<Instance> stopped = StopLocked(fork); !stopped.ok()) {
        spdlog::error("fork rollback: stopping {} failed: {}", (*result)->outcome.instance.id, stopped.status().ToString());
      }
    }
    if (Status destroyed = DestroyLocked(fork); !destroyed.ok()) {
      spdlog::error("fork rollback: removing {} failed: {}", (*result)->outcome.instance.id, destroyed.ToString());
    }
  }
  if (count > 1) return first_failure->Annotate("fork of " + std::to_string(count) + " (all rolled back)");
  return *first_failure;
}

Instance Engine::ForkIntent(const Instance& source, const std::string& name, const std::string& reserved_id,
                            const std::string& pool) const {
  Instance fork;
  fork.id = reserved_id;
  fork.name = name;
  fork.hypervisor = source.hypervisor;
  fork.state = InstanceState::kCreating;
  fork.storage_backend = std::string(backend_->Name());
  fork.volume = reserved_id;
  fork.parent_id = source.id;
  fork.created_at = fork.updated_at = fork.forked_at = NowRfc3339();
  fork.vcpus = source.vcpus;
  fork.attached_volumes = source.attached_volumes;  // all read-only (checked at admission)
  fork.pool = pool;
  // The guest of a fork restored from a snapshot has what its source's guest had.
  fork.guest_mac = GuestMac(source);
  fork.identity_generation = source.identity_generation;
  return fork;
}

Result<Engine::MadeFork> Engine::ForkOne(const Instance& source, const std::string& name, InstanceState target_state,
                                         const std::string& reserved_id, const std::string& pool,
                                         const PreCloned* pre_cloned) {
  auto failed = [&](std::string_view step, const Status& status) {
    return status.Annotate("fork '" + name + "' of '" + source.name + "': " + std::string(step));
  };
  // A live fork's source is Running; its snapshot, taken for the fork, is in the clone.
  const auto cloned = pre_cloned != nullptr ? pre_cloned->find(reserved_id) : PreCloned::const_iterator();
  const bool was_cloned = pre_cloned != nullptr && cloned != pre_cloned->end();
  const InstanceState source_state = was_cloned ? InstanceState::kStandby : source.state;
  Result<const hypervisor::Plugin*> plugin = PluginFor(source);
  if (!plugin.ok()) return failed("plugin", plugin.status());
  const bool from_snapshot = source_state == InstanceState::kStandby && target_state != InstanceState::kStopped;
  ForkOutcome outcome;
  ForkPhases& phases = outcome.phases;

  Instance fork = ForkIntent(source, name, reserved_id, pool);
  if (!from_snapshot) fork.guest_mac.clear();  // a booted guest takes its config's MAC: its own

  Reverter reverter;
  std::optional<storage::CloneReport> report;
  // The intent, the clone and the rewritten configs become durable together, just before the final
  // metadata that makes them a fork (base/deferred_sync.h): a crash before leaves orphans that
  // recovery removes.
  std::optional<DeferredSync> deferred(std::in_place);
  Clock::time_point step = Clock::now();
  if (!was_cloned) {
    if (Status intent = store_.Write(fork); !intent.ok()) return failed("metadata", intent);
  }
  reverter.Add("remove metadata of " + fork.id, [this, id = fork.id] { return store_.Remove(id); });
  phases.metadata_us += MicrosSince(step);

  step = Clock::now();
  if (was_cloned) {
    report = cloned->second.first;
    phases.clone_us = cloned->second.second;
  } else {
    Result<storage::CloneReport> made = backend_->Clone(source.volume, fork.volume);
    if (!made.ok()) return failed("clone", made.status());
    report = std::move(*made);
    phases.clone_us = MicrosSince(step);
  }
  reverter.Add("remove volume " + fork.volume, [this, volume = fork.volume] { return backend_->Remove(volume); });

  step = Clock::now();
  Result<hypervisor::NetworkIdentity> identity = network_->Allocate(fork.id);
  if (!identity.ok()) return failed("network", identity.status());
  reverter.Add("release lease of " + fork.id, [this, id = fork.id] { return network_->Release(id); });
  fork.identity = *identity;
  hypervisor::ForkSpec spec{GuestDir(source), GuestDir(fork), source.identity, fork.identity, from_snapshot};
  Result<hypervisor::PreparedFork> prepared = (*plugin)->PrepareFork(spec);
  if (!prepared.ok()) return failed("rewrite", prepared.status());
  fork.identity_channel = prepared->restore.identity_channel;
  phases.rewrite_us = MicrosSince(step);

  step = Clock::now();
  deferred->Note(GuestDir(fork));
  deferred->Note(InstanceDir(fork.id));
  if (Status synced = deferred->Sync(); !synced.ok()) return failed("metadata", synced);
  deferred.reset();
  fork.state = target_state != InstanceState::kRunning ? target_state
               : from_snapshot                         ? InstanceState::kStandby
                                                       : InstanceState::kStopped;
  auto entry = std::make_shared<Entry>();
  if (Status committed = Commit(entry, fork); !committed.ok()) return failed("metadata", committed);
  phases.metadata_us += MicrosSince(step);

  if (target_state == InstanceState::kRunning) {
    step = Clock::now();
    ExclusiveLock lock(entry->operation);  // uncontended: the entry is not published yet
    Result<Instance> running = from_snapshot ? RestoreLocked(entry, &phases.identity_us) : StartLocked(entry);
    if (!running.ok()) return failed(from_snapshot ? "restore" : "start", running.status());
    phases.restore_us = MicrosSince(step);
  }
  reverter.Commit();

  outcome.instance = Read(entry);
  outcome.mechanism = report->mechanism;
  outcome.files = report->files;
  outcome.logical_bytes = report->logical_bytes;
  outcome.shared_bytes = report->reflinked_bytes;
  outcome.copied_bytes = report->copied_bytes;
  return MadeFork{std::move(outcome), std::move(entry)};
}

}  // namespace fe::engine
