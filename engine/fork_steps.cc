// The steps of a fork (engine/fork_plan.h), the name reservation, and running many plans at once.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "base/deferred_sync.h"
#include "engine/fork_plan.h"

namespace fe::engine {
namespace {

constexpr size_t kMaxParallelForks = 8;

}  // namespace

Result<Engine::NameReservation> Engine::ReserveNames(const std::vector<std::string>& names,
                                                     const std::vector<std::string>& ids) {
  std::vector<std::pair<std::string, std::string>> reserved;
  std::lock_guard lock(mutex_);
  for (const std::string& name : names) {
    if (names_.count(name) != 0) return Status::AlreadyExists("instance name '" + name + "' is taken");
  }
  for (size_t i = 0; i < names.size(); ++i) {
    reserved.emplace_back(names[i], i < ids.size() ? ids[i] : NewInstanceId());
    names_.emplace(names[i], reserved.back().second);
  }
  return NameReservation(*this, std::move(reserved));
}

std::vector<Engine::ForkPlan> Engine::PlanForks(const Instance& source, const NameReservation& names,
                                                InstanceState target_state, const std::string& pool,
                                                const std::optional<SharedMemory>& shared_memory, const Labels& labels,
                                                const std::optional<SnapshotMark>& snapshot) const {
  std::vector<ForkPlan> plans;
  plans.reserve(names.names_and_ids().size());
  for (const auto& [name, id] : names.names_and_ids()) {
    ForkPlan& plan = plans.emplace_back(source, name, id, target_state, pool);
    plan.from_snapshot = source.state == InstanceState::kStandby && target_state != InstanceState::kStopped;
    Instance& fork = plan.fork;
    fork.id = id;
    fork.name = name;
    fork.hypervisor = source.hypervisor;
    fork.state = InstanceState::kCreating;
    fork.storage_backend = std::string(backend_->Name());
    fork.volume = id;
    fork.parent_id = source.id;
    fork.created_at = fork.updated_at = fork.forked_at = clock_.WallNowRfc3339();
    fork.ancestors = source.ancestors;
    // A snapshot's record is named by its id: the link carries the snapshot's own name.
    fork.ancestors.push_back({.id = source.id,
                              .name = source.snapshot_mark ? source.snapshot_mark->name : source.name,
                              .forked_at = fork.forked_at,
                              .snapshot = source.snapshot_mark.has_value()});
    // The chain keeps its newest links when it outgrows the bound (a fork of a fork, 4096 times over).
    if (fork.ancestors.size() > kMaxAncestors) {
      fork.ancestors.erase(fork.ancestors.begin(), fork.ancestors.end() - kMaxAncestors);
    }
    fork.labels = MergeLabels(source.labels, labels);
    fork.snapshot_mark = snapshot;
    fork.vcpus = source.vcpus;
    fork.attached_volumes = source.attached_volumes;  // all read-only (checked at admission)
    fork.pool = pool;
    // The guest of a fork restored from a snapshot has what its source's guest had; a booted guest
    // takes its config's MAC: its own.
    if (plan.from_snapshot) fork.guest_mac = GuestMac(source);
    fork.identity_generation = source.identity_generation;
    fork.shared_memory = shared_memory;
  }
  return plans;
}

Status Engine::WriteIntentAndClone(ForkPlan& plan) {
  const Clock::SteadyPoint start = clock_.Now();
  if (Status intent = store_.Write(plan.fork); !intent.ok()) return plan.Failed("metadata", intent);
  plan.undo.Add("remove metadata of " + plan.id, [this, id = plan.id] { return store_.Remove(id); });
  plan.outcome.phases.metadata_us += clock_.MicrosSince(start);

  const Clock::SteadyPoint clone_start = clock_.Now();
  Result<storage::CloneReport> report = backend_->Clone(plan.source.volume, plan.fork.volume);
  if (!report.ok()) return plan.Failed("clone", report.status());
  plan.undo.Add("remove volume " + plan.fork.volume,
                [this, volume = plan.fork.volume] { return backend_->Remove(volume); });
  plan.clone_report = std::move(*report);
  plan.outcome.phases.clone_us = clock_.MicrosSince(clone_start);
  plan.cloned = true;
  return Status::Ok();
}

Status Engine::LeaseAndRewrite(ForkPlan& plan, const hypervisor::Plugin& plugin) {
  const Clock::SteadyPoint start = clock_.Now();
  if (plan.fork.snapshot_mark) {
    // A snapshot keeps the identity it was taken with and leases none: it never runs, and its forks
    // lease their own.
    plan.fork.identity = plan.source.identity;
  } else {
    Result<hypervisor::NetworkIdentity> identity = network_->Allocate(plan.id);
    if (!identity.ok()) return plan.Failed("network", identity.status());
    plan.undo.Add("release lease of " + plan.id, [this, id = plan.id] { return ReleaseLease(id); });
    plan.fork.identity = *identity;
  }
  hypervisor::ForkSpec spec;
  spec.source_dir = GuestDir(plan.source);
  spec.target_dir = GuestDir(plan.fork);
  spec.source_identity = plan.source.identity;
  spec.target_identity = plan.fork.identity;
  spec.from_snapshot = plan.from_snapshot;
  spec.shared_memory = plan.fork.shared_memory.has_value();
  spec.keeps_identity = plan.fork.snapshot_mark.has_value();
  spec.guarded_dirs = GuardedDirs();
  Result<hypervisor::PreparedFork> prepared = plugin.PrepareFork(spec);
  if (!prepared.ok()) return plan.Failed("rewrite", prepared.status());
  if (plan.fork.shared_memory) FE_RETURN_IF_ERROR(DropUnusedMemoryCopy(plan, plugin));
  plan.fork.identity_channel = prepared->restore.identity_channel;
  plan.outcome.phases.rewrite_us = clock_.MicrosSince(start);
  return Status::Ok();
}

Status Engine::StageFinalMetadata(ForkPlan& plan) {
  const Clock::SteadyPoint start = clock_.Now();
  Instance fork = plan.fork;
  // Committed in the state the clone is in; BringUp takes it to the target from there.
  fork.state = plan.from_snapshot ? InstanceState::kStandby : InstanceState::kStopped;
  if (plan.target_state == InstanceState::kStopped) fork.state = InstanceState::kStopped;
  fork.updated_at = clock_.WallNowRfc3339();
  // Written beside the intent now, so the group's one sync makes it durable with the clone, the
  // configs and the lease; a rename commits it (CommitForks).
  if (Status staged = store_.Stage(fork); !staged.ok()) return plan.Failed("metadata", staged);
  plan.fork = std::move(fork);  // from here, the final metadata
  plan.outcome.phases.metadata_us += clock_.MicrosSince(start);
  return Status::Ok();
}

Status Engine::PrepareFork(ForkPlan& plan, const hypervisor::Plugin& plugin) {
  if (!plan.cloned) FE_RETURN_IF_ERROR(WriteIntentAndClone(plan));
  FE_RETURN_IF_ERROR(LeaseAndRewrite(plan, plugin));
  return StageFinalMetadata(plan);
}

Status Engine::CommitForks(std::vector<ForkPlan>& plans, DeferredSync& group) {
  const Clock::SteadyPoint start = clock_.Now();
  for (ForkPlan& plan : plans) {
    group.Note(GuestDir(plan.fork));
    group.Note(InstanceDir(plan.id));
  }
  // 1. Everything every fork wrote (intent, clone, configs, lease, staged metadata): one syncfs per
  //    filesystem for the whole group. A crash before step 2 leaves intents (Creating) recovery removes.
  if (Status synced = group.Sync(); !synced.ok()) return plans.front().Failed("metadata", synced);
  // 2. The renames that commit them: one directory fsync for a single fork, one syncfs for a group.
  //    (A fan-out cut here is undone at the restart by its record, engine/fan_out_record.h.)
  for (ForkPlan& plan : plans) {
    Status renamed = plans.size() == 1 ? store_.PublishStagedDurably(plan.id) : store_.PublishStaged(plan.id);
    if (!renamed.ok()) return plan.Failed("metadata", renamed);
  }
  if (plans.size() > 1) {
    DeferredSync renames(syncfs_);
    renames.Note(store_.root());
    if (Status synced = renames.Sync(); !synced.ok()) return plans.front().Failed("metadata", synced);
  }
  const int64_t commit_us = clock_.MicrosSince(start);
  for (ForkPlan& plan : plans) {
    auto entry = std::make_shared<Entry>();
    entry->instance = plan.fork;  // not published yet: no one can see it, no state change to announce
    plan.entry = entry;
    // From here the fork is a whole instance: undoing it is destroying it (metadata, volume, lease).
    plan.undo.Commit();
    plan.undo.Add("remove fork " + plan.id, [this, entry] { return DestroyLocked(entry); });
    plan.outcome.phases.metadata_us += commit_us;
  }
  return Status::Ok();
}

Status Engine::BringUp(ForkPlan& plan) {
  // Booted for Running, and for Standby when the clone has no snapshot (a Stopped source): then stood by.
  const bool boot_to_standby = plan.target_state == InstanceState::kStandby && !plan.from_snapshot;
  if (plan.target_state != InstanceState::kRunning && !boot_to_standby) return Status::Ok();
  const Clock::SteadyPoint start = clock_.Now();
  ExclusiveLock lock(plan.entry->operation);  // uncontended: the entry is not published yet
  Result<Instance> running =
      plan.from_snapshot ? RestoreLocked(plan.entry, &plan.outcome.phases.identity_us) : StartLocked(plan.entry);
  if (!running.ok()) return plan.Failed(plan.from_snapshot ? "restore" : "start", running.status());
  // Not yet published: no one else can hold its lock.
  plan.undo.Add("stop fork " + plan.id, [this, entry = plan.entry] { return StopLocked(entry).status(); });
  if (boot_to_standby) {
    Result<Instance> standby = StandbyLocked(plan.entry);
    if (!standby.ok()) return plan.Failed("standby", standby.status());
  }
  plan.outcome.phases.restore_us = clock_.MicrosSince(start);
  return Status::Ok();
}

Status Engine::ForEachPlan(std::vector<ForkPlan>& plans, DeferredSync* group,
                           const std::function<Status(ForkPlan&)>& step) {
  const size_t count = plans.size();
  std::vector<Status> results(count);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex adopting;
  auto work = [&] {
    std::optional<DeferredSync> scope;
    if (group != nullptr) scope.emplace(syncfs_);
    for (size_t i = next++; i < count && !failed; i = next++) {
      results[i] = step(plans[i]);
      if (!results[i].ok()) failed = true;  // no new forks are started; the made ones are undone
    }
    if (scope) {
      std::lock_guard lock(adopting);
      group->Adopt(*scope);
    }
  };
  const size_t workers = std::min(count, kMaxParallelForks);
  std::vector<std::thread> threads;
  for (size_t i = 1; i < workers; ++i) threads.emplace_back(work);
  work();
  for (std::thread& thread : threads) thread.join();
  for (const Status& result : results) {
    if (!result.ok()) return result;
  }
  return Status::Ok();
}

Status Engine::RunForkPlans(std::vector<ForkPlan>& plans, const hypervisor::Plugin& plugin) {
  // In batches across the group: every fork prepared (concurrently, nothing synced), one sync and one
  // commit for all, then every fork brought up.
  std::optional<DeferredSync> group(std::in_place, syncfs_);
  Status made = ForEachPlan(plans, &*group, [&](ForkPlan& plan) { return PrepareFork(plan, plugin); });
  if (made.ok()) made = CommitForks(plans, *group);
  group.reset();
  if (made.ok()) made = ForEachPlan(plans, nullptr, [&](ForkPlan& plan) { return BringUp(plan); });
  if (made.ok()) return Status::Ok();
  // All or nothing: every plan is undone (the ones never started undo only an early clone).
  for (ForkPlan& plan : plans) plan.undo.Revert();
  if (plans.size() > 1) return made.Annotate("fork of " + std::to_string(plans.size()) + " (all rolled back)");
  return made;
}

}  // namespace fe::engine
