#include "engine/cluster/name_reservations.h"

#include <utility>

#include <nlohmann/json.hpp>

#include "base/log.h"

namespace fe::engine::cluster {

NameReservations::NameReservations(std::shared_ptr<EtcdClient> etcd, ClusterKeys keys, std::string node)
    : etcd_(std::move(etcd)), keys_(std::move(keys)), node_(std::move(node)) {}

std::string NameReservations::ClaimValue() const { return nlohmann::json{{"node", node_}}.dump(); }

Status NameReservations::Reserve(const std::vector<std::string>& names) {
  {
    std::lock_guard lock(mutex_);
    for (const std::string& name : names) ++pending_[name];
  }
  const std::string claim = ClaimValue();
  std::vector<std::string> claimed;
  for (const std::string& name : names) {
    KeyValue holder;
    Result<bool> created = etcd_->CreateIfAbsent(keys_.Name(name), claim, 0, &holder);
    if (!created.ok()) {
      Log(LogLevel::kWarning, "cluster: name '" + name + "' admitted without a cluster claim (etcd: " +
                                  created.status().message() + "); claimed when etcd answers");
      continue;
    }
    if (*created) {
      claimed.push_back(name);
      continue;
    }
    const std::string owner = OwnerOf(holder.value);
    if (owner == node_) continue;  // ours already: the engine decides
    for (const std::string& mine : claimed) (void)etcd_->DeleteIfValue(keys_.Name(mine), claim);
    std::lock_guard lock(mutex_);
    for (const std::string& pending : names) {
      if (--pending_[pending] == 0) pending_.erase(pending);
    }
    return Status::AlreadyExists("instance name '" + name + "' is taken in the cluster by node '" + owner + "'");
  }
  return Status::Ok();
}

void NameReservations::Settle(const std::vector<std::string>& names, bool made) {
  std::function<void()> on_made;
  {
    std::lock_guard lock(mutex_);
    for (const std::string& name : names) {
      auto it = pending_.find(name);
      if (it != pending_.end() && --it->second == 0) pending_.erase(it);
    }
    if (made) claimed_.insert(claimed_.end(), names.begin(), names.end());
    if (made) on_made = on_made_;
  }
  if (made) {
    if (on_made) on_made();  // outside mutex_: the publisher takes its own lock, then ours
    return;
  }
  // Only a claim of this node is given back; the publisher removes one a lost answer left.
  for (const std::string& name : names) {
    if (Pending(name)) continue;
    (void)etcd_->DeleteIfValue(keys_.Name(name), ClaimValue());
  }
}

void NameReservations::SetOnMade(std::function<void()> on_made) {
  std::lock_guard lock(mutex_);
  on_made_ = std::move(on_made);
}

std::vector<std::string> NameReservations::TakeClaimed() {
  std::lock_guard lock(mutex_);
  return std::exchange(claimed_, {});
}

bool NameReservations::Pending(const std::string& name) const {
  std::lock_guard lock(mutex_);
  return pending_.count(name) > 0;
}

}  // namespace fe::engine::cluster
