// The engine's bookkeeping: opening, finding and publishing instances, get/list/delete, the public
// lifecycle entry points and the storage summary. Recovery is in recovery.cc, Create in create.cc,
// forks in fork.cc, state changes in lifecycle.cc.
#include "engine/engine.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>

#include <spdlog/spdlog.h>

#include "engine/data_root.h"
#include "hypervisor/registry/registry.h"
#include "base/fs_util.h"

namespace fe::engine {
namespace {

// Room for a few rewrites of the lease file and of instance metadata on a full disk.
constexpr uint64_t kSpaceReserveBytes = uint64_t{16} << 20;

Status NotFound(const std::string& id_or_name) { return Status::NotFound("instance '" + id_or_name + "' not found"); }

Status Busy(const std::string& name, std::chrono::milliseconds timeout) {
  return Status::Busy("instance '" + name + "' is busy: another operation held it for more than " +
                      std::to_string(timeout.count()) + " ms");
}

}  // namespace

Engine::Engine(EngineConfig config, EngineDependencies dependencies, std::unique_ptr<network::NetworkAllocator> network,
               InstanceStore store)
    : config_(std::move(config)),
      clock_(dependencies.clock != nullptr ? *dependencies.clock : SystemClock()),
      syncfs_(std::move(dependencies.syncfs)),
      throttle_(dependencies.throttle ? std::move(dependencies.throttle) : ThrottleFactory(vm::ThrottleThroughCgroup)),
      backend_(std::move(dependencies.backend)),
      plugins_(std::move(dependencies.plugins)),
      network_(std::move(network)),
      store_(std::move(store)) {}

Engine::~Engine() {
  {
    std::lock_guard lock(checkpoint_mutex_);
    stopping_ = true;
  }
  checkpoint_wake_.notify_all();
  if (checkpointer_.joinable()) checkpointer_.join();
}

Result<std::unique_ptr<Engine>> Engine::Open(EngineConfig config, EngineDependencies dependencies) {
  if (config.data_root.empty() || config.data_root.front() != '/') {
    return Status::InvalidArgument("data root '" + config.data_root + "' is not an absolute path");
  }
  if (::mkdir(config.data_root.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "create data root", config.data_root);
  }
  const DataRoot layout(config.data_root);
  if (config.storage.root.empty()) config.storage.root = layout.Volumes();
  if (!dependencies.plugins) dependencies.plugins = hypervisor::registry::FindPlugin;

  Result<InstanceStore> store = InstanceStore::Open(layout.Instances());
  if (!store.ok()) return store.status();
  if (!dependencies.backend) {
    Result<std::unique_ptr<storage::Backend>> backend = storage::registry::OpenBackend(config.storage);
    if (!backend.ok()) return backend.status().Annotate("opening storage " + config.storage.root);
    dependencies.backend = std::move(*backend);
  }
  Result<std::unique_ptr<network::NetworkAllocator>> network =
      network::NetworkAllocator::Open(layout.Network(), config.network);
  if (!network.ok()) return network.status();

  Result<std::unique_ptr<ReleaseJournal>> journal = ReleaseJournal::Open(layout.ReleaseJournal());
  if (!journal.ok()) return journal.status();
  Result<std::unique_ptr<EventLog>> events = EventLog::Open(
      layout.EventSequence(), dependencies.clock != nullptr ? *dependencies.clock : SystemClock(), config.events_kept);
  if (!events.ok()) return events.status();

  std::unique_ptr<Engine> engine(
      new Engine(std::move(config), std::move(dependencies), std::move(*network), std::move(*store)));
  engine->journal_ = std::move(*journal);
  engine->events_ = std::move(*events);
  // Made before recovery, which may need it, and kept refilled (a full disk only skips it).
  engine->reserve_ = std::make_unique<SpaceReserve>(layout.SpaceReserve(), kSpaceReserveBytes);
  if (Status reserved = engine->reserve_->Refill(); !reserved.ok()) spdlog::warn("{}", reserved.ToString());
  spdlog::info("engine: data root {}, storage backend {} at {} ({})", engine->config_.data_root,
               engine->backend_->Name(), engine->backend_->Root(), engine->backend_->SelectionReason());
  FE_RETURN_IF_ERROR(engine->Recover());
  // Readers resuming across the restart were told events were lost; this says what recovery did.
  engine->events_->Publish("engine.started", {{"instances", engine->entries_.size()},
                                              {"recovery", engine->recovery_.actions},
                                              {"quarantined", engine->recovery_.quarantined.size()}});
  engine->checkpointer_ = std::thread([raw = engine.get()] { raw->CheckpointLoop(); });
  return engine;
}

std::shared_ptr<Engine::Entry> Engine::FindEntry(const std::string& id_or_name, EntryKind kind) const {
  std::lock_guard lock(mutex_);
  auto wanted = [kind](const std::shared_ptr<Entry>& entry) {
    return !entry->deleted && entry->instance.snapshot_mark.has_value() == (kind == EntryKind::kSnapshot);
  };
  auto by_id = entries_.find(id_or_name);
  if (by_id != entries_.end()) return wanted(by_id->second) ? by_id->second : nullptr;
  auto by_name = names_.find(id_or_name);
  if (by_name == names_.end()) return nullptr;
  auto entry = entries_.find(by_name->second);
  if (entry == entries_.end() || !wanted(entry->second)) return nullptr;  // a reservation, or the other kind
  return entry->second;
}

Instance Engine::Read(const std::shared_ptr<Entry>& entry) const {
  std::lock_guard lock(mutex_);
  return entry->instance;
}

Result<Instance> Engine::Snapshot(const std::string& id_or_name) const {
  std::shared_ptr<Entry> entry = FindEntry(id_or_name);
  if (!entry) return NotFound(id_or_name);
  return Read(entry);
}

std::string Engine::InstanceDir(const std::string& id) const { return store_.Dir(id); }

void Engine::PublishCreated(const Instance& instance) {
  if (instance.snapshot_mark) {
    events_->Publish("snapshot.created", {{"snapshot", instance.id},
                                          {"name", instance.snapshot_mark->name},
                                          {"instance", instance.snapshot_mark->instance_id},
                                          {"state", InstanceStateName(instance.state)}});
    return;
  }
  nlohmann::json fields{{"instance", instance.id},
                        {"name", instance.name},
                        {"state", InstanceStateName(instance.state)},
                        {"hypervisor", instance.hypervisor}};
  if (!instance.parent_id.empty()) fields["parent_id"] = instance.parent_id;
  if (!instance.pool.empty()) fields["pool"] = instance.pool;
  events_->Publish("instance.created", std::move(fields));
}

Status Engine::Commit(const std::shared_ptr<Entry>& entry, Instance instance) {
  instance.updated_at = clock_.WallNowRfc3339();
  std::lock_guard write(entry->metadata_write);
  FE_RETURN_IF_ERROR(store_.Write(instance));
  entry->metadata_behind = false;
  InstanceState before;
  bool published;
  {
    std::lock_guard lock(mutex_);
    before = entry->instance.state;
    auto found = entries_.find(instance.id);
    published = found != entries_.end() && found->second == entry;
    entry->instance = instance;
  }
  // A fork's or an import's steps before it is published are not state changes anyone could see.
  if (published && before != instance.state) {
    events_->Publish("instance.state_changed", {{"instance", instance.id},
                                                {"name", instance.name},
                                                {"from", InstanceStateName(before)},
                                                {"to", InstanceStateName(instance.state)}});
  }
  return Status::Ok();
}

Result<const hypervisor::Plugin*> Engine::PluginFor(const std::string& kind) const { return plugins_(kind); }

Result<const hypervisor::Plugin*> Engine::PluginFor(const Instance& instance) const {
  return PluginFor(instance.hypervisor);
}

Result<std::pair<std::shared_ptr<Engine::Entry>, Engine::ExclusiveLock>> Engine::LockExclusive(
    const std::string& id_or_name) {
  std::shared_ptr<Entry> entry = FindEntry(id_or_name);
  if (!entry) return NotFound(id_or_name);
  Result<ExclusiveLock> lock = AcquireExclusive(*entry, id_or_name);
  if (!lock.ok()) return lock.status();
  {
    std::lock_guard guard(mutex_);
    if (entry->deleted) return NotFound(id_or_name);
  }
  return std::make_pair(std::move(entry), std::move(*lock));
}

Result<Engine::ExclusiveLock> Engine::AcquireExclusive(Entry& entry, const std::string& name) {
  const auto deadline = std::chrono::steady_clock::now() + config_.lock_timeout;
  std::unique_lock turnstile(entry.turnstile, deadline);
  ExclusiveLock lock(entry.operation, std::defer_lock);
  if (turnstile.owns_lock()) (void)lock.try_lock_until(deadline);
  if (!lock.owns_lock()) return Busy(name, config_.lock_timeout);
  return lock;
}

Result<Engine::SharedLock> Engine::AcquireShared(Entry& entry, const std::string& name) {
  const auto deadline = std::chrono::steady_clock::now() + config_.lock_timeout;
  {
    std::unique_lock turnstile(entry.turnstile, deadline);
    if (!turnstile.owns_lock()) return Busy(name, config_.lock_timeout);
  }
  SharedLock lock(entry.operation, deadline);
  if (!lock.owns_lock()) return Busy(name, config_.lock_timeout);
  return lock;
}

Result<Instance> Engine::Get(const std::string& id_or_name) const { return Snapshot(id_or_name); }

std::vector<Instance> Engine::List() const {
  std::vector<Instance> instances;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, entry] : entries_) {
      if (!entry->deleted && !entry->instance.snapshot_mark) instances.push_back(entry->instance);
    }
  }
  std::sort(instances.begin(), instances.end(), [](const Instance& a, const Instance& b) {
    return a.created_at != b.created_at ? a.created_at < b.created_at : a.id < b.id;
  });
  return instances;
}

size_t Engine::Count() const {
  std::lock_guard lock(mutex_);
  return static_cast<size_t>(std::count_if(entries_.begin(), entries_.end(), [](const auto& item) {
    return !item.second->deleted && !item.second->instance.snapshot_mark;
  }));
}

InstancePage Engine::List(const InstanceQuery& query) const {
  // Under the lock only the matches' keys are gathered and the page's instances copied: a filtered
  // page of thousands of instances copies a page, not thousands.
  std::vector<std::pair<PageCursor, const Instance*>> matches;
  InstancePage page;
  std::lock_guard lock(mutex_);
  for (const auto& [id, entry] : entries_) {
    if (entry->deleted || !query.Matches(entry->instance)) continue;
    PageCursor cursor = CursorOf(entry->instance);
    if (query.after && !(*query.after < cursor)) continue;
    matches.emplace_back(std::move(cursor), &entry->instance);
  }
  auto earlier = [](const auto& a, const auto& b) { return a.first < b.first; };
  size_t taken = matches.size();
  if (query.limit != 0 && query.limit < matches.size()) {
    taken = query.limit;
    std::partial_sort(matches.begin(), matches.begin() + static_cast<std::ptrdiff_t>(taken), matches.end(), earlier);
    page.next = matches[taken - 1].first;
  } else {
    std::sort(matches.begin(), matches.end(), earlier);
  }
  page.instances.reserve(taken);
  for (size_t i = 0; i < taken; ++i) page.instances.push_back(*matches[i].second);
  return page;
}

bool Engine::Exists(const std::string& id_or_name) const { return FindEntry(id_or_name) != nullptr; }

int Engine::RunningVcpusOutsidePools() const {
  int vcpus = 0;
  std::lock_guard lock(mutex_);
  for (const auto& [id, entry] : entries_) {
    const Instance& instance = entry->instance;
    if (!entry->deleted && instance.pool.empty() && instance.state == InstanceState::kRunning) vcpus += instance.vcpus;
  }
  return vcpus;
}

void Engine::SetDeleteGuard(DeleteGuard guard) {
  std::lock_guard lock(guard_mutex_);
  delete_guard_ = std::move(guard);
}

Status Engine::CheckDeleteGuard(const std::string& id_or_name) const {
  DeleteGuard guard;
  {
    std::lock_guard lock(guard_mutex_);
    guard = delete_guard_;
  }
  if (guard) {
    if (Result<Instance> instance = Get(id_or_name); instance.ok()) FE_RETURN_IF_ERROR(guard(*instance));
  }
  return Status::Ok();
}

Status Engine::Delete(const std::string& id_or_name) {
  FE_RETURN_IF_ERROR(CheckDeleteGuard(id_or_name));
  auto locked = LockExclusive(id_or_name);
  if (!locked.ok()) return locked.status();
  return DeleteLocked(locked->first, id_or_name);
}

Status Engine::DeleteLocked(const std::shared_ptr<Entry>& entry, const std::string& id_or_name) {
  // Deleting a template would delete the memory file its shared-memory forks map.
  FE_RETURN_IF_ERROR(CheckMemoryNotMapped(Read(entry), "delete"));
  if (Read(entry).state == InstanceState::kRunning) {
    Result<Instance> stopped = StopLocked(entry);
    if (!stopped.ok()) return stopped.status().Annotate("deleting '" + id_or_name + "': stop");
  }
  FE_RETURN_IF_ERROR(DestroyLocked(entry).Annotate("deleting '" + id_or_name + "'"));
  // A delete is how room comes back on a full disk: the reserve is made again once it can be.
  if (!reserve_->held()) {
    if (Status reserved = reserve_->Refill(); !reserved.ok()) spdlog::warn("{}", reserved.ToString());
  }
  return Status::Ok();
}

// Metadata first: once instance.json is gone (durably), the instance no longer exists for anyone, and
// a crash before the volume and lease are gone leaves an orphan volume and lease that recovery
// removes. The other order could leave metadata without its volume: a broken instance.
Status Engine::DestroyLocked(const std::shared_ptr<Entry>& entry) {
  Instance instance = Read(entry);
  {
    std::lock_guard write(entry->metadata_write);
    FE_RETURN_IF_ERROR(store_.Remove(instance.id));
    entry->metadata_behind = false;
  }
  {
    std::lock_guard lock(mutex_);
    entry->deleted = true;
    entries_.erase(instance.id);
    ++removals_;
    auto name = names_.find(instance.name);
    if (name != names_.end() && name->second == instance.id) names_.erase(name);
  }
  if (Status removed = backend_->Remove(instance.volume); !removed.ok() && removed.code() != ErrorCode::kNotFound) {
    spdlog::warn("delete {}: volume {} left behind, removed at the next start: {}", instance.id, instance.volume,
                 removed.ToString());
  }
  if (Status released = ReleaseLease(instance.id); !released.ok()) {
    spdlog::warn("delete {}: lease left behind, released at the next start: {}", instance.id, released.ToString());
  }
  if (instance.snapshot_mark) {
    spdlog::info("deleted snapshot {} ('{}' of {})", instance.id, instance.snapshot_mark->name,
                 instance.snapshot_mark->instance_id);
    events_->Publish("snapshot.deleted", {{"snapshot", instance.id}, {"name", instance.snapshot_mark->name}});
    return Status::Ok();
  }
  spdlog::info("deleted instance {} ('{}')", instance.id, instance.name);
  events_->Publish("instance.deleted", {{"instance", instance.id}, {"name", instance.name}});
  return Status::Ok();
}

Status Engine::ReleaseLease(const std::string& id) {
  return reserve_->WithRoom([&] { return network_->Release(id); });
}

void Engine::ReleaseNames(const std::vector<std::pair<std::string, std::string>>& names_and_ids) {
  std::lock_guard lock(mutex_);
  for (const auto& [name, id] : names_and_ids) {
    auto it = names_.find(name);
    if (it != names_.end() && it->second == id && entries_.count(id) == 0) names_.erase(it);
  }
}

Result<Instance> Engine::Start(const std::string& id_or_name) {
  auto locked = LockExclusive(id_or_name);
  if (!locked.ok()) return locked.status();
  return StartLocked(locked->first);
}

Result<Instance> Engine::Stop(const std::string& id_or_name) {
  auto locked = LockExclusive(id_or_name);
  if (!locked.ok()) return locked.status();
  return StopLocked(locked->first);
}

Result<Instance> Engine::Standby(const std::string& id_or_name) {
  auto locked = LockExclusive(id_or_name);
  if (!locked.ok()) return locked.status();
  return StandbyLocked(locked->first);
}

Result<Instance> Engine::Restore(const std::string& id_or_name) {
  auto locked = LockExclusive(id_or_name);
  if (!locked.ok()) return locked.status();
  return RestoreLocked(locked->first);
}

// The new name is reserved under mutex_ before the metadata is written, so no concurrent create, fork
// or release can take it; the old name is freed only once the rename is durable.
Result<Instance> Engine::ReleaseFromPool(const std::string& id_or_name, const std::string& new_name,
                                         const std::optional<int64_t>& ttl_s, int64_t idle_standby_s) {
  FE_RETURN_IF_ERROR(ValidatePolicy(ttl_s, idle_standby_s));
  auto locked = LockExclusive(id_or_name);
  if (!locked.ok()) return locked.status();
  const std::shared_ptr<Entry>& entry = locked->first;
  Instance instance = Read(entry);
  if (instance.pool.empty()) {
    return Status::FailedPrecondition("instance '" + instance.name + "' is not a pool member");
  }
  const std::string old_name = instance.name;
  const std::string name = new_name.empty() ? old_name : new_name;
  FE_RETURN_IF_ERROR(ValidateInstanceName(name));
  const bool renamed = name != old_name;
  if (renamed) {
    std::lock_guard lock(mutex_);
    if (!names_.emplace(name, instance.id).second) {
      return Status::AlreadyExists("instance name '" + name + "' is taken");
    }
  }
  instance.name = name;
  instance.pool.clear();
  instance.lifecycle.expires_at = ExpiryFrom(ttl_s);
  instance.lifecycle.idle_standby_s = idle_standby_s;
  Status committed = CommitRelease(entry, instance);
  if (renamed) {
    std::lock_guard lock(mutex_);
    auto drop = names_.find(committed.ok() ? old_name : name);
    if (drop != names_.end() && drop->second == instance.id) names_.erase(drop);
  }
  if (!committed.ok()) return committed.Annotate("releasing pool member '" + old_name + "'");
  return Read(entry);
}

Result<storage::VolumeUsage> Engine::Usage(const std::string& id_or_name) const {
  Result<Instance> instance = Get(id_or_name);
  if (!instance.ok()) return instance.status();
  Result<storage::VolumeUsage> usage = backend_->Usage(instance->volume);
  if (!usage.ok()) return usage.status().Annotate("usage of instance '" + instance->name + "'");
  return usage;
}

Result<storage::VolumeUsage> Engine::SnapshotUsage(const std::string& snapshot_id) const {
  Result<Instance> snapshot = GetSnapshot(snapshot_id);
  if (!snapshot.ok()) return snapshot.status();
  Result<storage::VolumeUsage> usage = backend_->Usage(snapshot->volume);
  if (!usage.ok()) return usage.status().Annotate("usage of snapshot '" + snapshot_id + "'");
  return usage;
}

Result<StorageInfo> Engine::Storage() const {
  StorageInfo info;
  info.backend = std::string(backend_->Name());
  info.root = backend_->Root();
  info.selection_reason = backend_->SelectionReason();
  Result<std::vector<std::string>> volumes = backend_->List();
  if (!volumes.ok()) return volumes.status();
  info.volumes = volumes->size();
  struct statvfs fs {};
  if (::statvfs(info.root.c_str(), &fs) != 0) return Status::FromErrno(errno, "statvfs", info.root);
  info.filesystem_bytes = static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize;
  info.filesystem_free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  Result<std::optional<storage::PoolUsage>> pool = backend_->Pool();
  if (!pool.ok()) return pool.status();
  info.pool = std::move(*pool);
  info.calibration = config_.storage.calibration;
  return info;
}

}  // namespace fe::engine
