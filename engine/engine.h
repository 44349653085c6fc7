// The engine: instances, their lifecycle and forks, over one storage backend, the hypervisor plugins
// and the network allocator. The daemon (engine/forkd) is a thin HTTP layer over this class.
//
// Locking. Each instance has an operation lock (a shared_timed_mutex, writer-preferring through a
// turnstile so a delete is not starved by a stream of forks). Forks of a Stopped or Standby
// source hold it *shared*: they only read the source, so many forks of one source run in parallel.
// Everything that changes an instance (delete, start, stop, standby, restore, and a from_running fork,
// which puts the source into standby and back) holds it *exclusive*. A lock not obtained within
// EngineConfig::lock_timeout is ErrorCode::kBusy naming the instance. Forks of different instances
// never wait for each other. Names are reserved under the engine mutex at admission, so two concurrent
// requests can never both take one name.
//
// Forks. Steps, each undone in reverse on failure (a Reverter): reserve the name and write the fork's
// metadata as an intent (state Creating) -> clone the source's volume -> lease a network identity ->
// the plugin rewrites the clone (PrepareFork) -> write the final metadata -> optionally bring the fork
// to its target state. The intent, the clone and the rewritten configs are made durable together, by
// one syncfs per filesystem just before the final metadata (base/deferred_sync.h), instead of two
// fsyncs per file; the lease is durable on its own. The source's files are never written. A failure names the step that
// failed; afterwards no directory, volume or lease of the fork remains. A crash between the steps leaves an intent that
// Open() finds and removes (RecoveryReport). Step names in errors: "metadata", "clone", "network", "rewrite",
// "start"/"restore" ("fork 'b' of 'a': clone: ..."). With count > 1 the forks run concurrently (at most 8 at a time);
// if one fails, no new one starts and the made ones are removed. Target states: a Stopped source gives Stopped
// (default) or Running forks; a Standby source gives Standby (default), Running or Stopped ones (a Stopped fork boots
// from its config); a Running source (from_running) gives what a Standby one gives, default Running. A Running source
// is forked live when its plugin and the backend allow it (engine/live_fork.cc: paused for the snapshot and the clones,
// then resumed: the same process runs on), else by standby and restore. A fork restored from a snapshot is handed its
// own identity by its guest agent before it counts as Running (lifecycle.cc; a failed handoff fails the step:
// "restore").
//
// Create. An import clones the directory into a new volume and runs the plugin's PrepareFork on it
// (the import is a fork from outside: the configs then point into the volume, and the network identity
// is the instance's own). Standby when the directory holds a snapshot (manifest snapshot_dir, or
// "snapshot/"), else Stopped.
//
// Delete. Stops a Running instance, then removes its metadata durably *first*, then its volume and
// lease: a crash in between leaves an orphan volume and lease, which Open() removes, never metadata
// without its volume.
//
// Threads: every public method may be called concurrently.
#pragma once

#include <unistd.h>

#include <chrono>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/deferred_sync.h"
#include "base/space_reserve.h"
#include "base/status.h"
#include "engine/event_log.h"
#include "engine/instance.h"
#include "engine/instance_query.h"
#include "engine/instance_store.h"
#include "engine/network/network_allocator.h"
#include "engine/release_journal.h"
#include "engine/vm/cpu_throttle.h"
#include "engine/vm/ram_preflush.h"
#include "hypervisor/plugin.h"
#include "snapshot/guest_files.h"
#include "storage/backend.h"
#include "storage/registry/backend_selection.h"

namespace fe::engine {

using PluginLookup = std::function<Result<const hypervisor::Plugin*>(std::string_view kind)>;

// 10.100.0.0/16, gateway 10.100.0.1, MACs 02:fe:…, TAPs fe…
inline network::NetworkPoolConfig DefaultNetworkPool() {
  network::NetworkPoolConfig pool;
  pool.subnet = "10.100.0.0/16";
  return pool;
}

struct EngineConfig {
  std::string data_root;                     // absolute; created if missing (mode 0700)
  storage::registry::StorageConfig storage;  // its root defaults to <data_root>/volumes when empty
  network::NetworkPoolConfig network = DefaultNetworkPool();
  std::chrono::milliseconds lock_timeout{30'000};
  std::chrono::milliseconds hypervisor_timeout{10'000};  // API socket appearance, shutdown
  // A restored fork's guest agent must acknowledge its identity within this (TCG guests are slow).
  std::chrono::milliseconds identity_timeout{10'000};
  // TAP devices (engine/network/tap_device.h): with manage_taps, an instance's TAP (identity.tap_device) is
  // made before its VM starts or is restored and removed when the VM stops, goes into standby or the
  // start fails. Needs CAP_NET_ADMIN, hence the default. `bridge`: the TAPs become its ports; empty:
  // none (the bridge must exist).
  bool manage_taps = ::geteuid() == 0;
  std::string bridge;
  // Events kept in memory for readers resuming with a cursor (engine/event_log.h).
  size_t events_kept = 10'000;
  // The live fork's pre-flush of the source's RAM file before its pause (engine/vm/ram_preflush.h);
  // with live_fork_throttle, a source whose rounds stop shrinking is throttled for the last rounds.
  vm::PreflushPolicy live_fork_preflush = {};
  bool live_fork_throttle = true;
};

// How long setting a guest's clock after a pause or restore may take (Engine::CorrectGuestClock).
inline constexpr std::chrono::milliseconds kGuestClockTimeout{3'000};

// Makes the CPU throttle of a VM process (engine/vm/cpu_throttle.h).
using ThrottleFactory = std::function<Result<std::unique_ptr<vm::CpuThrottle>>(pid_t pid)>;

// What the engine is given rather than makes, so tests pass fakes and fault-injecting wrappers
// (tests/support/fault_injecting_backend.h) instead of hooks in the engine.
struct EngineDependencies {
  std::unique_ptr<storage::Backend> backend;  // null: opened from EngineConfig::storage
  PluginLookup plugins;                       // empty: the plugin registry (hypervisor::FindPlugin)
  const Clock* clock = nullptr;               // null: SystemClock(); must outlive the engine
  // How a fork's deferred writes are made durable (base/deferred_sync.h); empty: syncfs(2).
  DeferredSync::SyncfsFunction syncfs;
  ThrottleFactory throttle;  // empty: vm::ThrottleThroughCgroup
};

struct CreateRequest {
  std::string name;
  std::string hypervisor;  // plugin kind
  std::string import_dir;  // absolute guest directory to clone in; empty: an empty volume
  // Standby when the imported directory holds a snapshot, else Stopped; forced when set.
  std::optional<InstanceState> state;
  int vcpus = 1;
  std::vector<AttachedVolume> attached_volumes;
  bool as_template = false;  // mark it a template (Instance::template_mark): it never runs, others fork it
  // A replica of another node's template (engine/replication): import_dir is the upload's staging
  // directory, whose configs still name the directory the files had on that node.
  struct Replica {
    std::string origin_dir;    // where the original's configs say its files are
    std::string template_id;   // the original's id
    std::string content_hash;  // the original's, checked chunk by chunk as the files arrived
  };
  std::optional<Replica> replica;
  Labels labels;
  std::optional<int64_t> ttl_s;  // as ForkRequest's
  int64_t idle_standby_s = 0;
};

// PATCH /v1/instances/{id}: what changes; absent fields stay.
struct InstanceUpdate {
  std::optional<std::optional<int64_t>> ttl_s;  // a value: expires that long from now; nullopt inside: never
  std::optional<int64_t> idle_standby_s;        // 0: never
  std::map<std::string, std::optional<std::string>> labels;  // set, or remove (nullopt)
};

// InvalidArgument naming the field unless ttl_s is 1..kMaxPolicySeconds and idle_standby_s 0..that.
Status ValidatePolicy(const std::optional<int64_t>& ttl_s, int64_t idle_standby_s);

// How a from_running fork may pause its source.
enum class SourcePause {
  // The live path where the source's RAM is a shared file (paused for its device state and the clones);
  // otherwise standby and restore of the source.
  kShort,
  // A background snapshot (Capabilities().background_snapshot, guest RAM anonymous): the source pauses
  // while its volume is cloned and the hypervisor prepares the snapshot, then runs while its RAM is
  // saved; the forks wait for that save and load RAM in full (engine/background_fork.cc).
  kBackground,
};

struct ForkRequest {
  std::string name;  // with count > 1: forks are named <name>-1 .. <name>-<count> (see first_index)
  bool from_running = false;
  std::optional<InstanceState> target_state;  // default: the source's state
  int count = 1;                              // 1..64, all or nothing
  std::string pool;                           // non-empty: the forks are ready members of this pool (Instance::pool)
  // kShared: the forks map the source's snapshot memory file instead of RAM of their own
  // (engine/shared_memory.cc); needs a Standby source and target Running or Standby. Default: private.
  std::optional<MemoryMode> memory;
  // from_running on the live path: write the source's RAM file back while it still runs (and throttle
  // it if that does not converge), so its pause writes only what is left. false: the pause writes all
  // the guest dirtied (the comparison the benchmark prints).
  bool preflush = true;
  SourcePause source_pause = SourcePause::kShort;
  int first_index = 0;  // 0: the default naming above
  Labels labels;        // laid over the source's (engine/labels.h)
  // Lifecycle policies of the forks (Instance::lifecycle; not inherited): deleted ttl_s after they
  // were made, stood by once idle that long (0: never).
  std::optional<int64_t> ttl_s;
  int64_t idle_standby_s = 0;
};

// POST /v1/instances/{id}/snapshots (engine/snapshots.cc).
struct SnapshotRequest {
  std::string name;  // DNS label, unique among the instance's snapshots
  Labels labels;     // laid over the instance's
  // A Running instance: the live path's pre-flush of its RAM file before the pause (ForkRequest::preflush).
  bool preflush = true;
};

// The names of a fork's instances: <name> for one; <name>-1 .. <name>-<count> for more; and
// <name>-<first_index> .. <name>-<first_index + count - 1> when first_index is set (a router splitting
// one fan-out across nodes gives each node its part of the numbers).
std::vector<std::string> FanOutNames(const ForkRequest& request);

// Where a fork's time went, in microseconds.
struct ForkPhases {
  int64_t lock_wait_us = 0;       // waiting for the source's lock
  int64_t source_standby_us = 0;  // from_running (full path): standby of the source (snapshot + exit)
  // from_running (live path): the source paused, from the pause to the resume (snapshot + clones).
  // source_pause "background": the pause for the clones and the capture, or, when its guest's
  // filesystems were frozen instead, the hypervisor's own stop for the capture.
  int64_t source_pause_us = 0;
  // source_pause "background": the source's guest filesystems frozen by its agent while the VM ran,
  // from the freeze (its clones, the hypervisor's preparation and capture) to the thaw; 0 when it was
  // paused instead. Writers in the guest wait this long; nothing else does.
  int64_t filesystems_frozen_us = 0;
  // source_pause "background": collapsing the source's guest RAM back into huge pages before that,
  // while it ran (engine/vm/huge_pages.h); 0 where it was not done.
  int64_t huge_page_collapse_us = 0;
  // from_running (live path), before the pause: the rounds writing back the source's RAM file while it
  // ran (engine/vm/ram_preflush.h), how many, and for how long of them the source was CPU-throttled.
  int64_t preflush_us = 0;
  int preflush_rounds = 0;
  int64_t throttle_us = 0;
  // Live path: the RAM file's dirty bytes when the source was paused, which its pause had to write
  // back; unknown on kernels without cachestat and off the live path.
  std::optional<uint64_t> dirty_bytes_at_pause;
  // from_running: setting the source's guest clock to the host's after its pause (live path) or its
  // restore (full path, within source_standby_us there), through its guest agent.
  int64_t source_clock_us = 0;
  // source_pause "background": writing the source's snapshot (its guest RAM) while it ran on, after its pause.
  int64_t background_snapshot_us = 0;
  int64_t clone_us = 0;     // storage clone of the volume
  int64_t rewrite_us = 0;   // identity lease + plugin PrepareFork
  int64_t metadata_us = 0;  // writing the fork's metadata
  int64_t restore_us = 0;   // bringing the fork to its target state (and the source back)
  int64_t identity_us = 0;  // handing the restored fork's guest its identity (within restore_us)
  int64_t total_us = 0;
};

// {"lock_wait_us": ..., "total_us": ...}: the phases as the API and the events name them.
nlohmann::json ForkPhasesToJson(const ForkPhases& phases);

struct ForkOutcome {
  Instance instance;
  ForkPhases phases;
  std::string mechanism;  // the clone report's summary mechanism ("btrfs-snapshot", "reflink", ...)
  // from_running served by the live path: the source was paused, not stopped (engine/live_fork.cc)
  bool live = false;
  // from_running: what became of the source's guest clock afterwards (GuestClockName); empty otherwise.
  std::string source_clock;
  uint64_t files = 0;
  uint64_t logical_bytes = 0;
  // Logical bytes (holes included) of files cloned by reference: shared with the source, not copied.
  // A btrfs or dm-thin snapshot does not walk the tree: 0 there, and the mechanism says why.
  uint64_t shared_bytes = 0;
  uint64_t copied_bytes = 0;  // data bytes actually written (sparse-copy fallback; holes excluded)
};

struct StorageInfo {
  std::string backend;
  std::string root;
  std::string selection_reason;
  uint64_t volumes = 0;
  uint64_t filesystem_bytes = 0;  // statvfs of the root
  uint64_t filesystem_free_bytes = 0;
  std::optional<storage::PoolUsage> pool = std::nullopt;  // the pool the volumes draw from (dm-thin), if any
  // Clone costs measured on the root at start (EngineConfig::storage.calibration), if any.
  std::optional<storage::registry::CloneCalibration> calibration = std::nullopt;
};

// An instance whose metadata could not be read: moved aside, never deleted (engine/recovery.cc).
struct QuarantinedInstance {
  std::string id;
  std::string path;    // <data_root>/quarantine/<id>: move it back to instances/ once repaired
  std::string reason;  // why its metadata could not be read (as at the start that moved it)
};

// What Open() found and cleaned up, one line each, for the log; and what it quarantined (this start
// or an earlier one), for GET /v1/healthz.
struct RecoveryReport {
  std::vector<std::string> actions;
  std::vector<QuarantinedInstance> quarantined;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> Open(EngineConfig config, EngineDependencies dependencies = {});
  ~Engine();

  Result<Instance> Create(const CreateRequest& request);
  // By id or by name.
  Result<Instance> Get(const std::string& id_or_name) const;
  std::vector<Instance> List() const;  // sorted by creation time
  size_t Count() const;                // how many List() would return, copying none
  // One page of the instances `query` matches, in the same order (engine/instance_query.h). Copies
  // only the page's instances.
  InstancePage List(const InstanceQuery& query) const;
  // Cheap queries that copy no instance, for the pools' refill loop, which ticks often.
  bool Exists(const std::string& id_or_name) const;
  int RunningVcpusOutsidePools() const;  // the vCPUs of Running instances that are not pool members
  // Instances deleted since Open: a caller holding ids re-checks them only when this moved.
  uint64_t removals() const { return removals_.load(); }
  // Stops a Running instance first. Its forks are not affected. Refused (FailedPrecondition) when the
  // delete guard says no.
  Status Delete(const std::string& id_or_name);

  // What keeps instances above the engine from being deleted under it (a pool's template): returns
  // FailedPrecondition saying why, or Ok. Called by Delete before the instance's lock is taken, with
  // no engine lock held; it must not call back into the engine. Empty: every delete may go ahead.
  using DeleteGuard = std::function<Status(const Instance& instance)>;
  void SetDeleteGuard(DeleteGuard guard);

  Result<Instance> Start(const std::string& id_or_name);    // Stopped -> Running (boot)
  Result<Instance> Stop(const std::string& id_or_name);     // Running -> Stopped
  Result<Instance> Standby(const std::string& id_or_name);  // Running -> Standby (pause, snapshot, exit)
  Result<Instance> Restore(const std::string& id_or_name);  // Standby -> Running

  Result<std::vector<ForkOutcome>> Fork(const std::string& source_id_or_name, const ForkRequest& request);
  // Whether forks of the instance could map its memory now (ForkRequest::memory kShared): it is
  // Standby and its plugin can map its snapshot's memory file. What pools default to.
  bool CanShareMemory(const std::string& id_or_name) const;

  // Hands a pool member out (engine/pools/pool.h): renames it to `new_name` (empty: keeps its name) and
  // clears its pool label, durably (a release journal record, the metadata written later by a
  // checkpointer; see release_checkpoint.cc), under its lock. NotFound; FailedPrecondition when it is not a
  // pool member; InvalidArgument for a bad name or policy; AlreadyExists when `new_name` is taken (then
  // nothing changed). `ttl_s` and `idle_standby_s` set the released instance's lifecycle policy (issue
  // #23), journaled with the release.
  Result<Instance> ReleaseFromPool(const std::string& id_or_name, const std::string& new_name,
                                   const std::optional<int64_t>& ttl_s = std::nullopt, int64_t idle_standby_s = 0);

  Result<StorageInfo> Storage() const;
  // What the instance's volume holds on disk: logical, allocated, shared and exclusive bytes, and how
  // they were measured (storage/backend.h VolumeUsage). Walks the volume: not for hot paths.
  Result<storage::VolumeUsage> Usage(const std::string& id_or_name) const;

  // --- lifecycle_policy.cc (issue #23): what engine/lifecycle_keeper.h enforces.
  // Changes an instance's policies and labels, durably, under its lock. NotFound; InvalidArgument.
  Result<Instance> Update(const std::string& id_or_name, const InstanceUpdate& update);
  // Stands a Running instance by because it was idle for `idle_s` (Instance::lifecycle.stood_by_idle_at
  // is set; an instance.idle_standby event). FailedPrecondition when it is no longer Running.
  Result<Instance> StandbyIdle(const std::string& id_or_name, int64_t idle_s);
  // Deletes an instance whose deadline passed (an instance.expired event). FailedPrecondition when its
  // deadline is not (or no longer) past, so a PATCH racing the keeper wins.
  Status Expire(const std::string& id_or_name);
  // expires_at for a ttl of `ttl_s` from now (empty for none).
  std::string ExpiryFrom(const std::optional<int64_t>& ttl_s) const;

  // --- snapshots.cc: immutable snapshots of an instance (Instance::snapshot_mark), issue #23.
  // Takes a snapshot of a Running (paused for the clone only where the live path serves it, else
  // stood by and restored, as a from_running fork), Standby or Stopped instance: a clone of its volume
  // in the state it is in (Standby for a Running one), keeping its identity, crash-safe as a fork is.
  // NotFound; AlreadyExists when the instance has a snapshot of that name; FailedPrecondition for a
  // template or a pool member, and for a state the instance cannot be snapshotted in.
  Result<ForkOutcome> TakeSnapshot(const std::string& instance_id_or_name, const SnapshotRequest& request);
  // By id. NotFound for anything else (an instance's id included).
  Result<Instance> GetSnapshot(const std::string& snapshot_id) const;
  // FailedPrecondition naming the forks that map its memory file. Its instance is not affected.
  Status DeleteSnapshot(const std::string& snapshot_id);
  // What its volume holds on disk, as Usage measures an instance's.
  Result<storage::VolumeUsage> SnapshotUsage(const std::string& snapshot_id) const;
  // Forks of the snapshot, as Fork makes them of an instance (a Standby snapshot gives Standby forks
  // by default, a Stopped one Stopped forks). from_running is refused: a snapshot never runs.
  Result<std::vector<ForkOutcome>> ForkSnapshot(const std::string& snapshot_id, const ForkRequest& request);
  // Rolls the instance back to one of its own snapshots: whatever it ran is stopped, its volume is
  // replaced by a clone of the snapshot's (its identity kept), and it is brought to the state the
  // snapshot was taken in (Running for a live one). Crash-safe: the old volume is removed only after
  // the instance's metadata names the new one. FailedPrecondition when the snapshot is another
  // instance's, the instance is a template, or forks map its memory file.
  Result<Instance> RollBack(const std::string& instance_id_or_name, const std::string& snapshot_id);

  // A template's files, for a replication to another node (engine/template_files.cc): the list
  // recorded when it was made (snapshot/guest_files.h), and `length` bytes of one of its files at
  // `offset` (at most kMaxChunkBytes), read beneath its volume. NotFound; FailedPrecondition for an
  // instance that is no template (its files may change under the copy); InvalidArgument for a path
  // that is not in the list or a range outside the file.
  struct TemplateFileList {
    Instance instance;
    std::string dir;  // its volume: the directory its configs name
    std::shared_ptr<const snapshot::GuestFileList> list;
  };
  Result<TemplateFileList> TemplateFiles(const std::string& id_or_name) const;
  Result<std::string> ReadTemplateFile(const std::string& id_or_name, const std::string& path, uint64_t offset,
                                       uint64_t length) const;
  const RecoveryReport& recovery() const { return recovery_; }
  // What happened, in order (engine/event_log.h): the engine publishes instance.created,
  // instance.state_changed, instance.deleted, fork.started, fork.finished and fork.failed; the pools
  // publish theirs into it too.
  EventLog& events() const { return *events_; }
  const storage::Backend& backend() const { return *backend_; }

 private:
  struct Entry {
    // Writer preference: an exclusive locker holds the turnstile while it waits for `operation`, and
    // shared lockers pass through the turnstile first, so a delete is not starved by a stream of
    // forks (libstdc++'s shared_timed_mutex prefers readers).
    std::timed_mutex turnstile;
    std::shared_timed_mutex operation;  // see "Locking" above
    Instance instance;                  // GUARDED_BY(Engine::mutex_)
    bool deleted = false;               // GUARDED_BY(Engine::mutex_)
    // Serialises writes of this instance's metadata (Commit, the release checkpointer, removal); taken
    // before Engine::mutex_, never while holding it.
    std::mutex metadata_write;
    // instance.json lags `instance`: a release only in the journal so far. GUARDED_BY(metadata_write)
    bool metadata_behind = false;
  };
  using ExclusiveLock = std::unique_lock<std::shared_timed_mutex>;
  using SharedLock = std::shared_lock<std::shared_timed_mutex>;

  Engine(EngineConfig config, EngineDependencies dependencies, std::unique_ptr<network::NetworkAllocator> network,
         InstanceStore store);

  // --- engine.cc: bookkeeping
  Status Recover();
  // --- recovery.cc: the steps of Recover
  void RemoveTemporaryFiles(const std::function<void(std::string)>& note);
  void Quarantine(const std::string& id, const std::string& reason, const std::function<void(std::string)>& note);
  void ListQuarantined(std::set<std::string>& owned);
  void UndoUnansweredFanOuts(const std::function<void(std::string)>& note);
  // What a lookup is after: an instance, or a snapshot (Instance::snapshot_mark); an entry of the
  // other kind is not found.
  enum class EntryKind { kInstance, kSnapshot };
  std::shared_ptr<Entry> FindEntry(const std::string& id_or_name, EntryKind kind = EntryKind::kInstance) const;
  Result<Instance> Snapshot(const std::string& id_or_name) const;
  Instance Read(const std::shared_ptr<Entry>& entry) const;  // a copy, under mutex_
  std::string InstanceDir(const std::string& id) const;
  // Lists the new template's volume, keeps the list beside its metadata and marks `instance`.
  Status RecordTemplateFiles(Instance& instance, const CreateRequest& request) const;
  std::string GuestDir(const Instance& instance) const { return backend_->Path(instance.volume); }
  // What no path in an instance's configs may point into but its own volume (hypervisor::ForkSpec).
  std::vector<std::string> GuardedDirs() const { return {config_.data_root, backend_->Root()}; }
  // The instance.created event of a published instance.
  void PublishCreated(const Instance& instance);
  // Persists `instance` (atomically, with a fresh updated_at) and publishes it in memory; a change of
  // state of a published instance is an instance.state_changed event.
  Status Commit(const std::shared_ptr<Entry>& entry, Instance instance);
  Result<const hypervisor::Plugin*> PluginFor(const Instance& instance) const;
  Result<const hypervisor::Plugin*> PluginFor(const std::string& kind) const;
  // The entry by id or name with its lock held exclusively; NotFound, or Busy after lock_timeout.
  Result<std::pair<std::shared_ptr<Entry>, ExclusiveLock>> LockExclusive(const std::string& id_or_name);
  // The entry's lock, through its turnstile; Busy naming `name` after lock_timeout.
  Result<ExclusiveLock> AcquireExclusive(Entry& entry, const std::string& name);
  Result<SharedLock> AcquireShared(Entry& entry, const std::string& name);
  // Removes a stopped (or stopping) instance's metadata durably, then its volume and lease, and
  // unpublishes it. REQUIRES: the entry's lock held exclusively (or the entry not yet published).
  Status DestroyLocked(const std::shared_ptr<Entry>& entry);
  // The delete guard's answer for the instance (Ok when there is none or the instance is gone).
  Status CheckDeleteGuard(const std::string& id_or_name) const;
  // Delete's work once the entry's lock is held exclusively: stops it, destroys it, refills the reserve.
  Status DeleteLocked(const std::shared_ptr<Entry>& entry, const std::string& id_or_name);
  // Releases the lease of `id`; on a full disk the space reserve makes room for it (base/space_reserve.h).
  Status ReleaseLease(const std::string& id);
  // Releases names reserved at admission that were never published.
  void ReleaseNames(const std::vector<std::pair<std::string, std::string>>& names_and_ids);

  // --- lifecycle.cc: state changes. REQUIRE: the entry's operation lock held exclusively.
  Result<Instance> StartLocked(const std::shared_ptr<Entry>& entry);
  Result<Instance> StopLocked(const std::shared_ptr<Entry>& entry);
  Result<Instance> StandbyLocked(const std::shared_ptr<Entry>& entry);
  // With `identity_us`, the time spent handing the guest its identity is added to it.
  // `clock`: set to CorrectGuestClock's outcome when the guest kept its identity and got only the time.
  Result<Instance> RestoreLocked(const std::shared_ptr<Entry>& entry, int64_t* identity_us = nullptr,
                                 std::string* clock = nullptr);
  // After RestoreVm: hands the guest its identity when it still has another (a fork's first restore),
  // updating guest_mac and identity_generation in `instance` (not committed). See lifecycle.cc.
  Status HandOffIdentityLocked(Instance& instance);
  // The instance's TAP, made (up, and a port of the bridge unless `bridged` is false: a guest that must
  // not reach the network yet) or removed, when the engine manages TAPs; see EngineConfig.
  Status AttachTap(const Instance& instance, bool bridged = true) const;
  void DetachTap(const Instance& instance) const;  // failures are logged
  // The directory the instance's snapshot lives in: <guest_dir>/<manifest snapshot_dir or "snapshot">.
  std::string SnapshotDirOf(const Instance& instance) const;

  // --- release_checkpoint.cc: pool releases through the journal (engine/release_journal.h)
  // Makes the release durable in the journal (falling back to a synchronous Commit when the journal
  // cannot take it) and publishes it; the checkpointer writes the metadata later.
  Status CommitRelease(const std::shared_ptr<Entry>& entry, Instance instance);
  // Recovery: applies the journal's releases whose metadata may not have reached the disk.
  Status ReplayReleases();
  void CheckpointLoop();
  // Writes the metadata of the released instances `batch` (seq, id) and marks them applied; those
  // that failed are returned for a later retry.
  std::vector<std::pair<uint64_t, std::string>> CheckpointReleases(std::vector<std::pair<uint64_t, std::string>> batch);

  // --- fork.cc: Fork without its events (fork.started, then fork.finished or fork.failed)
  // What RunFork makes of what: forks of an instance (the default), forks of a snapshot, or a snapshot
  // (`snapshot` set: one record named by its id, keeping the source's identity, leasing none).
  struct ForkKind {
    EntryKind source = EntryKind::kInstance;
    std::optional<SnapshotMark> snapshot;
    std::string snapshot_id;
  };
  Result<std::vector<ForkOutcome>> RunFork(const std::string& source_id_or_name, const ForkRequest& request,
                                           const ForkKind& kind);
  // RunFork between its events (fork.started, then fork.finished or fork.failed).
  Result<std::vector<ForkOutcome>> ForkAndPublish(const std::string& source_id_or_name, const ForkRequest& request,
                                                  const ForkKind& kind);

  // --- fork_steps.cc: the fork as a pipeline (engine/fork_plan.h)
  class NameReservation;
  struct ForkPlan;
  // Takes `names` (AlreadyExists naming the first taken one) with a new instance id each, or with
  // `ids` when given (one per name).
  Result<NameReservation> ReserveNames(const std::vector<std::string>& names, const std::vector<std::string>& ids = {});
  // One plan per reserved name: the fork's intent (state Creating) from `source`.
  std::vector<ForkPlan> PlanForks(const Instance& source, const NameReservation& names, InstanceState target_state,
                                  const std::string& pool, const std::optional<SharedMemory>& shared_memory,
                                  const Labels& labels, const std::optional<SnapshotMark>& snapshot) const;
  Status WriteIntentAndClone(ForkPlan& plan);
  Status LeaseAndRewrite(ForkPlan& plan, const hypervisor::Plugin& plugin);
  // Writes the final metadata beside the intent, unsynced (<id>/.instance.json.staged).
  Status StageFinalMetadata(ForkPlan& plan);
  // The unsynced steps of one plan, from where it stands (the live path cloned already).
  Status PrepareFork(ForkPlan& plan, const hypervisor::Plugin& plugin);
  // Makes every prepared plan durable with one sync per filesystem (what `group` and the plans'
  // directories name), then commits them all with one more flush.
  Status CommitForks(std::vector<ForkPlan>& plans, DeferredSync& group);
  Status BringUp(ForkPlan& plan);
  // `step` for every plan on up to 8 threads, none started after one failed; the first failure. With
  // `group`, each thread runs in a DeferredSync scope that `group` adopts at its end.
  Status ForEachPlan(std::vector<ForkPlan>& plans, DeferredSync* group, const std::function<Status(ForkPlan&)>& step);
  // Prepares every plan, commits them as one group, brings them up; all or nothing: on a failure
  // every plan is undone.
  Status RunForkPlans(std::vector<ForkPlan>& plans, const hypervisor::Plugin& plugin);
  // Makes the forks visible (their names stay taken) and returns their outcomes, logged.
  std::vector<ForkOutcome> PublishForks(std::vector<ForkPlan>& plans, NameReservation& names);

  // --- shared_memory.cc: forks mapping their template's snapshot memory
  // What forks of `source` (as locked) map for `mode`: nothing (private), the source's snapshot memory
  // file (made read-only), or the file the source itself maps. InvalidArgument, FailedPrecondition or
  // the plugin's Unsupported when the mode cannot be served, naming the source and why.
  Result<std::optional<SharedMemory>> SharedMemoryFor(const Instance& source, const hypervisor::Plugin& plugin,
                                                      MemoryMode mode, bool source_running, InstanceState target) const;
  // FailedPrecondition naming the instances that map `instance`'s memory file, for `operation`.
  Status CheckMemoryNotMapped(const Instance& instance, std::string_view operation) const;
  // Removes a shared-memory fork's clone of the snapshot memory file it does not use.
  Status DropUnusedMemoryCopy(ForkPlan& plan, const hypervisor::Plugin& plugin);
  // The memory source of `instance`'s hypervisor: its shared memory file, if any.
  static hypervisor::MemorySource MemorySourceOf(const Instance& instance) {
    return instance.shared_memory ? hypervisor::MemorySource{instance.shared_memory->file} : hypervisor::MemorySource{};
  }

  // Sets the guest clock of the Running `instance` to the host's after forkengine paused or restored
  // it, through its guest agent, waiting at most kGuestClockTimeout (or the identity timeout). Never fails what it
  // follows: a guest without the agent, or with one too old, keeps its clock (logged). "set", "no_agent", "unsupported"
  // or "failed".
  std::string CorrectGuestClock(const Instance& instance) const;

  // --- live_fork.cc: from_running without stopping the source
  // Whether the live path can serve a from_running fork of `source` (Running): the plugin snapshots
  // a running VM leaving shared-file RAM in place and the backend's clones share data.
  bool CanLiveFork(const Instance& source, const hypervisor::Plugin& plugin) const;
  // Pauses the source, snapshots it into its snapshot directory, runs WriteIntentAndClone for every
  // plan, resumes it; then runs the plans' other steps. REQUIRES: the source's lock held exclusively;
  // `plans` made from the source as its snapshot shows it (Standby). `preflush`: ForkRequest::preflush.
  // `source_phases`: its source_pause, preflush, throttle and dirty_bytes_at_pause are set.
  Status LiveForkLocked(const Instance& source, std::vector<ForkPlan>& plans, const hypervisor::Plugin& plugin,
                        bool preflush, ForkPhases& source_phases);
  // The source's manifest names its snapshot directory (written, when it did not, before any pause):
  // forks and restores find the snapshot there, as after a standby.
  Status NameSnapshotInManifest(const Instance& source, const std::string& what) const;

  // --- background_fork.cc: from_running with source_pause "background"
  // Pauses the source, runs WriteIntentAndClone for every plan, starts the plugin's background
  // snapshot into the first fork's snapshot directory (the source runs again), waits for it, copies
  // the snapshot's files into the other forks, then runs the plans' other steps. REQUIRES: as
  // LiveForkLocked. `source_phases`: its source_pause, background_snapshot and source_clock are set.
  // Unsupported, saying why, unless the source can be forked so: the plugin has
  // Capabilities().background_snapshot and the source's guest RAM is not a shared file.
  Status CheckBackgroundForkable(const Instance& source, const hypervisor::Plugin& plugin) const;
  Status BackgroundForkLocked(const Instance& source, std::vector<ForkPlan>& plans, const hypervisor::Plugin& plugin,
                              ForkPhases& source_phases);

  const EngineConfig config_;
  const Clock& clock_;
  const DeferredSync::SyncfsFunction syncfs_;
  const ThrottleFactory throttle_;
  const std::unique_ptr<storage::Backend> backend_;
  const PluginLookup plugins_;
  const std::unique_ptr<network::NetworkAllocator> network_;
  InstanceStore store_;
  RecoveryReport recovery_;
  std::unique_ptr<SpaceReserve> reserve_;  // on the data root's filesystem
  std::unique_ptr<EventLog> events_;

  std::atomic<uint64_t> removals_{0};
  mutable std::mutex guard_mutex_;
  DeleteGuard delete_guard_;  // GUARDED_BY(guard_mutex_)
  std::unique_ptr<ReleaseJournal> journal_;
  std::mutex checkpoint_mutex_;
  std::condition_variable checkpoint_wake_;
  std::vector<std::pair<uint64_t, std::string>> to_checkpoint_;  // GUARDED_BY(checkpoint_mutex_)
  std::chrono::steady_clock::time_point last_release_;           // GUARDED_BY(checkpoint_mutex_)
  bool stopping_ = false;                                        // GUARDED_BY(checkpoint_mutex_)
  std::thread checkpointer_;                                     // started by Open after recovery, joined by ~Engine

  mutable std::mutex mutex_;
  // (instance id, snapshot name) of snapshots being taken: a name is its instance's until the snapshot
  // is published or fails. GUARDED_BY(mutex_)
  std::set<std::pair<std::string, std::string>> snapshot_names_taken_;
  // Templates' file lists as read from their files.json (a template's never changes; ids are never reused).
  mutable std::mutex template_files_mutex_;
  mutable std::map<std::string, std::shared_ptr<const snapshot::GuestFileList>> template_files_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // by id; GUARDED_BY(mutex_)
  std::map<std::string, std::string> names_;               // name -> id, incl. reservations; GUARDED_BY(mutex_)
};

}  // namespace fe::engine
