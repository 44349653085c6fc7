#include "engine/cluster/cluster_cache.h"

#include "base/log.h"

namespace fe::engine::cluster {

ClusterCache::ClusterCache(std::shared_ptr<EtcdClient> etcd, ClusterKeys keys, std::chrono::milliseconds watch_idle)
    : etcd_(std::move(etcd)),
      keys_(std::move(keys)),
      watch_idle_(watch_idle),
      index_(std::make_shared<const ClusterIndex>()) {}

ClusterCache::~ClusterCache() { Stop(); }

void ClusterCache::Start() {
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
}

void ClusterCache::Stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const ClusterIndex> ClusterCache::Snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return index_;
}

bool ClusterCache::WaitForRevision(int64_t revision, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return index_->revision >= revision; });
}

void ClusterCache::Publish(int64_t revision) {
  auto index = std::make_shared<ClusterIndex>(IndexFromEntries(keys_, entries_));
  index->revision = revision;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    index_ = std::move(index);
  }
  changed_.notify_all();
}

Result<int64_t> ClusterCache::Load() {
  int64_t revision = 0;
  FE_ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, etcd_->GetPrefix(keys_.prefix(), &revision));
  entries_.clear();
  for (KeyValue& kv : kvs) entries_[kv.key] = std::move(kv.value);
  Publish(revision);
  return revision;
}

void ClusterCache::Run() {
  int64_t revision = 0;  // 0: read the prefix (again)
  bool warned = false;
  while (!stopping_) {
    if (revision == 0) {
      Result<int64_t> loaded = Load();
      if (!loaded.ok()) {
        synced_ = false;
        if (!warned) LogWarning("cluster index: " + loaded.status().ToString() + " (retrying)");
        warned = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      revision = *loaded;
    }
    synced_ = true;
    if (warned) LogInfo("cluster index: etcd answers again (revision " + std::to_string(revision) + ")");
    warned = false;
    Status watched = etcd_->WatchPrefix(
        keys_.prefix(), revision + 1,
        [&](const std::vector<EtcdClient::WatchEvent>& events, int64_t at) {
          for (const EtcdClient::WatchEvent& event : events) {
            if (event.deleted) {
              entries_.erase(event.kv.key);
            } else {
              entries_[event.kv.key] = event.kv.value;
            }
          }
          revision = at;
          Publish(at);
          return !stopping_.load();
        },
        watch_idle_);
    if (watched.code() == ErrorCode::kFailedPrecondition) {
      revision = 0;  // compacted past us: read it all again
    } else if (!watched.ok()) {
      synced_ = false;
      if (!warned) LogWarning("cluster index: watch: " + watched.ToString() + " (retrying)");
      warned = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
}

}  // namespace fe::engine::cluster
