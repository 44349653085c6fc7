// The cluster's index kept in memory by etcd's watch (the router's view, issue #22): one range read of
// the cluster prefix, then a watch from the revision after it, each change applied as it comes; a
// watch cut or idle is resumed from the last revision, and a compacted one reads the prefix again.
// Readers take an immutable snapshot (ClusterIndex) that changes are published as, so a placement
// decision never sees half a batch.
//
// Whether the index is fresh: `Synced()` is false before the first read and after etcd stopped
// answering (the cache keeps serving its last index; the router refuses changes then, see
// engine/router).
//
// Threads: one thread of its own; Snapshot and Synced from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engine/cluster/cluster_index.h"
#include "engine/cluster/etcd_client.h"

namespace fe::engine::cluster {

class ClusterCache {
 public:
  ClusterCache(std::shared_ptr<EtcdClient> etcd, ClusterKeys keys,
               std::chrono::milliseconds watch_idle = std::chrono::seconds(2));
  ~ClusterCache();  // Stop()
  ClusterCache(const ClusterCache&) = delete;
  ClusterCache& operator=(const ClusterCache&) = delete;

  void Start();
  void Stop();

  // The index now (an empty one before the first read).
  std::shared_ptr<const ClusterIndex> Snapshot() const;
  bool Synced() const { return synced_.load(); }
  // Waits until the index shows etcd's revision `revision` or later; whether it did within `timeout`.
  bool WaitForRevision(int64_t revision, std::chrono::milliseconds timeout) const;

 private:
  void Run();
  // Reads the whole prefix; its revision.
  Result<int64_t> Load();
  void Publish(int64_t revision);

  std::shared_ptr<EtcdClient> etcd_;
  ClusterKeys keys_;
  std::chrono::milliseconds watch_idle_;
  std::map<std::string, std::string> entries_;  // the cache thread's own
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::shared_ptr<const ClusterIndex> index_;
  std::atomic<bool> synced_{false};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace fe::engine::cluster
