// Fork: validation, the source's lock, from_running's standby and restore of the source, the per-fork
// steps (each undone in reverse on failure) and the all-or-nothing fan-out of count > 1.
//
// Target states. A Stopped source gives Stopped (default), Running (booted) or Standby (booted, then
// stood by: the reference design's behaviour) forks. A Standby source
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

#include "engine/data_root.h"
#include "engine/fan_out_record.h"
#include "engine/fork_plan.h"

namespace fe::engine {
namespace {

constexpr int kMaxForkCount = 64;
constexpr int kMaxFirstIndex = 1'000'000;

Result<std::vector<std::string>> ForkNames(const ForkRequest& request) {
  if (request.count < 1 || request.count > kMaxForkCount) {
    return Status::InvalidArgument("fork count " + std::to_string(request.count) + " is not 1.." +
                                   std::to_string(kMaxForkCount));
  }
  if (request.target_state == InstanceState::kCreating)
    return Status::InvalidArgument("target_state Creating is not a state to fork into");
  if (request.first_index < 0 || request.first_index > kMaxFirstIndex) {
    return Status::InvalidArgument("fork first_index " + std::to_string(request.first_index) + " is not 0.." +
                                   std::to_string(kMaxFirstIndex));
  }
  std::vector<std::string> names = FanOutNames(request);
  for (const std::string& name : names) FE_RETURN_IF_ERROR(ValidateInstanceName(name));
  return names;
}

// What a fork of a source in `state` becomes: the state asked for, else Running for a running source
// and the source's state otherwise. Every target is reachable: a Stopped source forked into Standby
// is booted, then stood by (as the reference design does), so the fork has a snapshot of its own.
InstanceState TargetState(InstanceState state, const ForkRequest& request, bool was_running) {
  return request.target_state.value_or(was_running ? InstanceState::kRunning : state);
}

Status CheckSharedVolumes(const Instance& source) {
  for (const AttachedVolume& volume : source.attached_volumes) {
    if (!volume.read_only) {
      return Status::FailedPrecondition(
          "cannot fork instance '" + source.name + "': it has the writable volume " + volume.path +
          " attached, and two VMs must never write one disk (attach it read-only or detach it)");
    }
  }
  return Status::Ok();
}

void LogFork(const ForkOutcome& outcome, const Instance& source) {
  const ForkPhases& p = outcome.phases;
  spdlog::info(
      "fork {} ('{}') of {} ('{}') {}{}: lock_wait {}us standby {}us preflush {}us ({} rounds, throttled {}us) "
      "huge page collapse {}us pause {}us (dirty {}) frozen {}us background snapshot {}us clone {}us ({}) rewrite {}us "
      "metadata {}us restore "
      "{}us "
      "(identity {}us) total {}us",
      outcome.instance.id, outcome.instance.name, source.id, source.name, InstanceStateName(outcome.instance.state),
      outcome.live ? " (live)" : "", p.lock_wait_us, p.source_standby_us, p.preflush_us, p.preflush_rounds,
      p.throttle_us, p.huge_page_collapse_us, p.source_pause_us,
      p.dirty_bytes_at_pause ? std::to_string(*p.dirty_bytes_at_pause) + " bytes" : std::string("unknown"),
      p.filesystems_frozen_us, p.background_snapshot_us, p.clone_us, outcome.mechanism, p.rewrite_us, p.metadata_us,
      p.restore_us, p.identity_us, p.total_us);
}

}  // namespace

std::vector<std::string> FanOutNames(const ForkRequest& request) {
  if (request.count <= 1 && request.first_index == 0) return {request.name};
  const int first = request.first_index == 0 ? 1 : request.first_index;
  std::vector<std::string> names;
  for (int i = first; i < first + request.count; ++i) names.push_back(request.name + "-" + std::to_string(i));
  return names;
}

nlohmann::json ForkPhasesToJson(const ForkPhases& phases) {
  nlohmann::json json{{"lock_wait_us", phases.lock_wait_us},
                      {"source_standby_us", phases.source_standby_us},
                      {"source_pause_us", phases.source_pause_us},
                      {"preflush_us", phases.preflush_us},
                      {"preflush_rounds", phases.preflush_rounds},
                      {"throttle_us", phases.throttle_us},
                      {"source_clock_us", phases.source_clock_us},
                      {"background_snapshot_us", phases.background_snapshot_us},
                      {"identity_us", phases.identity_us},
                      {"clone_us", phases.clone_us},
                      {"rewrite_us", phases.rewrite_us},
                      {"metadata_us", phases.metadata_us},
                      {"restore_us", phases.restore_us},
                      {"total_us", phases.total_us},
                      {"filesystems_frozen_us", phases.filesystems_frozen_us},
                      {"huge_page_collapse_us", phases.huge_page_collapse_us}};
  if (phases.dirty_bytes_at_pause) json["dirty_bytes_at_pause"] = *phases.dirty_bytes_at_pause;
  return json;
}

Result<std::vector<ForkOutcome>> Engine::Fork(const std::string& source_id_or_name, const ForkRequest& request) {
  return ForkAndPublish(source_id_or_name, request, ForkKind{});
}

Result<std::vector<ForkOutcome>> Engine::ForkAndPublish(const std::string& source_id_or_name,
                                                        const ForkRequest& request, const ForkKind& kind) {
  nlohmann::json started{
      {"source", source_id_or_name}, {"name", request.name},
      {"count", request.count},      {"from_running", request.from_running},
      {"pool", request.pool},        {"memory", MemoryModeName(request.memory.value_or(MemoryMode::kPrivate))}};
  if (request.target_state) started["target_state"] = InstanceStateName(*request.target_state);
  events_->Publish("fork.started", started);
  Result<std::vector<ForkOutcome>> outcomes = RunFork(source_id_or_name, request, kind);
  if (!outcomes.ok()) {
    events_->Publish("fork.failed", {{"source", source_id_or_name},
                                     {"name", request.name},
                                     {"code", ErrorCodeName(outcomes.status().code())},
                                     {"message", outcomes.status().message()}});
    return outcomes;
  }
  nlohmann::json forks = nlohmann::json::array();
  for (const ForkOutcome& outcome : *outcomes) {
    forks.push_back({{"instance", outcome.instance.id},
                     {"name", outcome.instance.name},
                     {"state", InstanceStateName(outcome.instance.state)},
                     {"mechanism", outcome.mechanism},
                     {"live", outcome.live},
                     {"phases", ForkPhasesToJson(outcome.phases)}});
  }
  events_->Publish("fork.finished", {{"source", source_id_or_name},
                                     {"source_id", outcomes->front().instance.parent_id},
                                     {"name", request.name},
                                     {"forks", forks}});
  return outcomes;
}

Result<std::vector<ForkOutcome>> Engine::RunFork(const std::string& source_id_or_name, const ForkRequest& request,
                                                 const ForkKind& kind) {
  const Clock::SteadyPoint started = clock_.Now();
  Result<std::vector<std::string>> names = ForkNames(request);
  if (!names.ok()) return names.status();
  const std::string_view what = kind.source == EntryKind::kSnapshot ? "snapshot" : "instance";
  std::shared_ptr<Entry> entry = FindEntry(source_id_or_name, kind.source);
  if (!entry) return Status::NotFound(std::string(what) + " '" + source_id_or_name + "' not found");
  Instance source = Read(entry);
  FE_RETURN_IF_ERROR(CheckSharedVolumes(source));
  // The request's labels alone, then laid over the source's (together they may be too many).
  FE_RETURN_IF_ERROR(ValidateLabels(request.labels));
  FE_RETURN_IF_ERROR(ValidatePolicy(request.ttl_s, request.idle_standby_s));
  FE_RETURN_IF_ERROR(ValidateLabels(MergeLabels(source.labels, request.labels))
                         .Annotate("the labels of '" + source.name + "' with the fork's"));
  if (source.state == InstanceState::kRunning && !request.from_running) {
    return Status::FailedPrecondition("instance '" + source.name +
                                      "' is Running: pass from_running=true to fork it (it is put into "
                                      "standby for the fork and restored afterwards)");
  }

  // Names are reserved before waiting for the lock, so two requests can never both take one.
  FE_ASSIGN_OR_RETURN(
      NameReservation reservation,
      ReserveNames(*names, kind.snapshot ? std::vector<std::string>{kind.snapshot_id} : std::vector<std::string>{}));
  // A fan-out is all or nothing across a crash too (engine/fan_out_record.h).
  std::optional<FanOutRecord> fan_out;
  if (names->size() > 1) {
    std::vector<std::string> ids;
    for (const auto& [name, id] : reservation.names_and_ids()) ids.push_back(id);
    Result<FanOutRecord> record = FanOutRecord::Begin(DataRoot(config_.data_root).FanOuts(), ids);
    if (!record.ok()) {
      return record.status().Annotate("fork '" + request.name + "' of '" + source.name + "', " +
                                      std::to_string(ids.size()) + " forks");
    }
    fan_out.emplace(std::move(*record));
  }

  // Shared for a source that stays as it is; exclusive when it must go into standby and back.
  std::optional<SharedLock> shared;
  std::optional<ExclusiveLock> exclusive;
  const Clock::SteadyPoint lock_start = clock_.Now();
  if (source.state == InstanceState::kRunning) {
    FE_ASSIGN_OR_RETURN(exclusive, AcquireExclusive(*entry, source.name));
  } else {
    FE_ASSIGN_OR_RETURN(shared, AcquireShared(*entry, source.name));
  }
  const int64_t lock_wait_us = clock_.MicrosSince(lock_start);
  {
    std::lock_guard lock(mutex_);
    if (entry->deleted) return Status::NotFound(std::string(what) + " '" + source_id_or_name + "' not found");
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
  // A snapshot is the clone as it is: Standby (of a Running or Standby source) or Stopped.
  const InstanceState target = kind.snapshot ? forked_state : TargetState(forked_state, request, was_running);
  std::optional<SnapshotMark> snapshot = kind.snapshot;
  if (snapshot) snapshot->taken_in = source.state;  // as locked
  Result<const hypervisor::Plugin*> plugin = PluginFor(source);
  if (!plugin.ok()) return plugin.status();
  hypervisor::PluginCapabilities capabilities = (*plugin)->Capabilities();
  if (!(forked_state == InstanceState::kStopped ? capabilities.fork_stopped : capabilities.fork_standby)) {
    return Status::Unsupported("hypervisor '" + source.hypervisor + "' cannot fork a " +
                               std::string(InstanceStateName(forked_state)) + " instance");
  }

  Result<std::optional<SharedMemory>> shared_memory =
      SharedMemoryFor(source, **plugin, request.memory.value_or(MemoryMode::kPrivate), was_running, target);
  if (!shared_memory.ok()) return shared_memory.status();

  // The forks' lifecycle policies are the request's (not inherited from the source).
  auto with_policy = [this](std::vector<ForkPlan>& plans, const ForkRequest& asked) {
    for (ForkPlan& plan : plans) {
      plan.fork.lifecycle.expires_at = ExpiryFrom(asked.ttl_s);
      plan.fork.lifecycle.idle_standby_s = asked.idle_standby_s;
    }
  };
  auto publish = [&](std::vector<ForkPlan>& plans, const Instance& forked) -> Result<std::vector<ForkOutcome>> {
    if (fan_out) {
      if (Status finished = fan_out->Finish(); !finished.ok()) {
        for (ForkPlan& plan : plans) plan.undo.Revert();
        return finished.Annotate("fork of " + std::to_string(plans.size()) + " (all rolled back)");
      }
    }
    for (ForkPlan& plan : plans) plan.outcome.phases.lock_wait_us = lock_wait_us;
    std::vector<ForkOutcome> outcomes = PublishForks(plans, reservation);
    for (ForkOutcome& outcome : outcomes) {
      outcome.phases.total_us = clock_.MicrosSince(started);
      LogFork(outcome, forked);
    }
    return outcomes;
  };

  // A Running source paused, not stopped: the live path, or a background snapshot when asked for.
  // The forks are made from the snapshot the pause takes: they fork a Standby source.
  const bool background = was_running && request.source_pause == SourcePause::kBackground;
  if (background) FE_RETURN_IF_ERROR(CheckBackgroundForkable(source, **plugin));
  if (background || (was_running && CanLiveFork(source, **plugin))) {
    Instance snapshotted = source;
    snapshotted.state = InstanceState::kStandby;
    std::vector<ForkPlan> plans =
        PlanForks(snapshotted, reservation, target, request.pool, *shared_memory, request.labels, snapshot);
    with_policy(plans, request);
    ForkPhases source_phases;
    FE_RETURN_IF_ERROR(background ? BackgroundForkLocked(source, plans, **plugin, source_phases)
                                  : LiveForkLocked(source, plans, **plugin, request.preflush, source_phases));
    for (ForkPlan& plan : plans) {
      plan.outcome.live = true;
      ForkPhases& phases = plan.outcome.phases;
      phases.source_pause_us = source_phases.source_pause_us;
      phases.preflush_us = source_phases.preflush_us;
      phases.preflush_rounds = source_phases.preflush_rounds;
      phases.throttle_us = source_phases.throttle_us;
      phases.dirty_bytes_at_pause = source_phases.dirty_bytes_at_pause;
      phases.background_snapshot_us = source_phases.background_snapshot_us;
      phases.filesystems_frozen_us = source_phases.filesystems_frozen_us;
      phases.huge_page_collapse_us = source_phases.huge_page_collapse_us;
      phases.source_clock_us = source_phases.source_clock_us;
    }
    return publish(plans, source);
  }

  int64_t standby_us = 0;
  if (was_running) {
    const Clock::SteadyPoint standby_start = clock_.Now();
    Result<Instance> standby = StandbyLocked(entry);
    if (!standby.ok()) return standby.status().Annotate("fork of '" + source.name + "': source standby");
    source = *standby;
    standby_us = clock_.MicrosSince(standby_start);
  }

  std::vector<ForkPlan> plans =
      PlanForks(source, reservation, target, request.pool, *shared_memory, request.labels, snapshot);
  with_policy(plans, request);
  Status made = RunForkPlans(plans, **plugin);

  int64_t restore_source_us = 0;
  std::string source_clock;
  if (was_running) {
    // The source goes back to Running on every path, whether the forks worked or not.
    const Clock::SteadyPoint restore_start = clock_.Now();
    Result<Instance> restored = RestoreLocked(entry, nullptr, &source_clock);
    restore_source_us = clock_.MicrosSince(restore_start);
    if (!restored.ok()) {
      for (ForkPlan& plan : plans) plan.undo.Revert();
      return restored.status().Annotate("fork of '" + source.name +
                                        "': restoring the source (forks rolled back; "
                                        "the source stays in Standby)");
    }
  }
  FE_RETURN_IF_ERROR(made);
  for (ForkPlan& plan : plans) {
    plan.outcome.phases.source_standby_us = standby_us;
    plan.outcome.source_clock = source_clock;
    plan.outcome.phases.restore_us += restore_source_us;
  }
  return publish(plans, source);
}

std::vector<ForkOutcome> Engine::PublishForks(std::vector<ForkPlan>& plans, NameReservation& names) {
  {
    std::lock_guard lock(mutex_);
    for (ForkPlan& plan : plans) entries_.emplace(plan.id, plan.entry);
  }
  names.Keep();
  std::vector<ForkOutcome> outcomes;
  for (ForkPlan& plan : plans) {
    plan.undo.Commit();
    ForkOutcome outcome = std::move(plan.outcome);
    outcome.instance = Read(plan.entry);
    PublishCreated(outcome.instance);
    outcome.mechanism = plan.clone_report->mechanism;
    outcome.files = plan.clone_report->files;
    outcome.logical_bytes = plan.clone_report->logical_bytes;
    outcome.shared_bytes = plan.clone_report->reflinked_bytes;
    outcome.copied_bytes = plan.clone_report->copied_bytes;
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

}  // namespace fe::engine
