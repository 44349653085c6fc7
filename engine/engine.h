// The engine: instances, their lifecycle and forks, over one storage backend, the hypervisor plugins
// and the network allocator. The daemon (engine/forkd) is a thin HTTP layer over this class.
//
// Locking. Each instance has an operation lock (a shared_timed_mutex). Forks of a Stopped or Standby
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
// to its target state. The source's files are never written. A failure names the step that failed;
// afterwards no directory, volume or lease of the fork remains. A crash between the steps leaves an
// intent that Open() finds and removes (RecoveryReport).
//
// Threads: every public method may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/instance.h"
#include "engine/network_allocator.h"
#include "hypervisor/plugin.h"
#include "storage/backend.h"
#include "storage/backend_selection.h"

namespace fe::engine {

using PluginLookup = std::function<Result<const hypervisor::Plugin*>(std::string_view kind)>;

struct EngineConfig {
  std::string data_root;           // absolute; created if missing (mode 0700)
  storage::StorageConfig storage;  // its root defaults to <data_root>/volumes when empty
  NetworkPoolConfig network{.subnet = "10.100.0.0/16"};
  std::chrono::milliseconds lock_timeout{30'000};
  std::chrono::milliseconds hypervisor_timeout{10'000};  // API socket appearance, shutdown
  PluginLookup plugins;  // empty: hypervisor::FindPlugin
};

struct CreateRequest {
  std::string name;
  std::string hypervisor;         // plugin kind
  std::string import_dir;         // absolute guest directory to clone in; empty: an empty volume
  // Standby when the imported directory holds a snapshot, else Stopped; forced when set.
  std::optional<InstanceState> state;
  int vcpus = 1;
  std::vector<AttachedVolume> attached_volumes;
};

struct ForkRequest {
  std::string name;  // with count > 1: forks are named <name>-1 .. <name>-<count>
  bool from_running = false;
  std::optional<InstanceState> target_state;  // default: the source's state
  int count = 1;                              // 1..64, all or nothing
};

// Where a fork's time went, in microseconds.
struct ForkPhases {
  int64_t lock_wait_us = 0;  // waiting for the source's lock
  int64_t source_standby_us = 0;  // from_running: pausing and snapshotting the source
  int64_t clone_us = 0;      // storage clone of the volume
  int64_t rewrite_us = 0;    // identity lease + plugin PrepareFork
  int64_t metadata_us = 0;   // writing the fork's metadata
  int64_t restore_us = 0;    // bringing the fork to its target state (and the source back)
  int64_t total_us = 0;
};

struct ForkOutcome {
  Instance instance;
  ForkPhases phases;
  std::string mechanism;  // the clone report's summary mechanism ("btrfs-snapshot", "reflink", ...)
  uint64_t files = 0;
  uint64_t logical_bytes = 0;
  uint64_t shared_bytes = 0;  // bytes the fork shares with its source (where measurable)
};

struct StorageInfo {
  std::string backend;
  std::string root;
  std::string selection_reason;
  uint64_t volumes = 0;
  uint64_t filesystem_bytes = 0;       // statvfs of the root
  uint64_t filesystem_free_bytes = 0;
};

// What Open() found and cleaned up, one line each, for the log.
struct RecoveryReport {
  std::vector<std::string> actions;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> Open(EngineConfig config);
  ~Engine();

  Result<Instance> Create(const CreateRequest& request);
  // By id or by name.
  Result<Instance> Get(const std::string& id_or_name) const;
  std::vector<Instance> List() const;  // sorted by creation time
  // Stops a Running instance first. Its forks are not affected.
  Status Delete(const std::string& id_or_name);

  Result<Instance> Start(const std::string& id_or_name);    // Stopped -> Running (boot)
  Result<Instance> Stop(const std::string& id_or_name);     // Running -> Stopped
  Result<Instance> Standby(const std::string& id_or_name);  // Running -> Standby (pause, snapshot, exit)
  Result<Instance> Restore(const std::string& id_or_name);  // Standby -> Running

  Result<std::vector<ForkOutcome>> Fork(const std::string& source_id_or_name, const ForkRequest& request);

  Result<StorageInfo> Storage() const;
  const RecoveryReport& recovery() const { return recovery_; }
  const storage::Backend& backend() const { return *backend_; }

 private:
  struct Entry {
    std::shared_timed_mutex operation;  // see "Locking" above
    Instance instance;                  // GUARDED_BY(Engine::mutex_)
    bool deleted = false;               // GUARDED_BY(Engine::mutex_)
  };

  Engine(EngineConfig config, std::unique_ptr<storage::Backend> backend,
         std::unique_ptr<NetworkAllocator> network);

  // --- engine.cc: bookkeeping
  Status Recover();
  std::shared_ptr<Entry> FindEntry(const std::string& id_or_name) const;
  Result<Instance> Snapshot(const std::string& id_or_name) const;
  std::string InstanceDir(const std::string& id) const;
  std::string GuestDir(const Instance& instance) const { return backend_->Path(instance.volume); }
  // Persists `instance` (atomically) and publishes it in memory.
  Status Commit(const std::shared_ptr<Entry>& entry, Instance instance);
  Result<const hypervisor::Plugin*> PluginFor(const Instance& instance) const;

  // --- lifecycle.cc: state changes. REQUIRE: the entry's operation lock held exclusively.
  Result<Instance> StartLocked(const std::shared_ptr<Entry>& entry);
  Result<Instance> StopLocked(const std::shared_ptr<Entry>& entry);
  Result<Instance> StandbyLocked(const std::shared_ptr<Entry>& entry);
  Result<Instance> RestoreLocked(const std::shared_ptr<Entry>& entry);

  // --- fork.cc
  Result<ForkOutcome> ForkOne(const Instance& source, const std::string& name, InstanceState target_state,
                              const std::string& reserved_id);

  const EngineConfig config_;
  const std::unique_ptr<storage::Backend> backend_;
  const std::unique_ptr<NetworkAllocator> network_;
  RecoveryReport recovery_;

  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // by id; GUARDED_BY(mutex_)
  std::map<std::string, std::string> names_;               // name -> id, incl. reservations; GUARDED_BY(mutex_)
};

}  // namespace fe::engine
