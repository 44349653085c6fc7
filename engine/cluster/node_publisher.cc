#include "engine/cluster/node_publisher.h"

#include <utility>

#include "base/log.h"

namespace fe::engine::cluster {
namespace {

// Writes `wanted` over `written` (only what differs) and deletes what `written` had beyond it.
Status WriteDifference(EtcdClient& etcd, const std::map<std::string, std::string>& wanted,
                       const std::map<std::string, std::string>& written, int64_t lease) {
  for (const auto& [key, value] : wanted) {
    auto it = written.find(key);
    if (it == written.end() || it->second != value) FE_RETURN_IF_ERROR(etcd.Put(key, value, lease).status());
  }
  for (const auto& [key, value] : written) {
    if (wanted.count(key) == 0) FE_RETURN_IF_ERROR(etcd.Delete(key).status());
  }
  return Status::Ok();
}

}  // namespace

NodePublisher::NodePublisher(std::shared_ptr<EtcdClient> etcd, PublisherOptions options,
                             std::function<NodeState()> read_state, std::shared_ptr<NameReservations> names)
    : etcd_(std::move(etcd)),
      options_(std::move(options)),
      keys_(options_.cluster),
      read_state_(std::move(read_state)),
      names_(std::move(names)),
      thread_([this] { Run(); }) {}

NodePublisher::~NodePublisher() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  if (lease_ != 0) {
    if (Status revoked = etcd_->RevokeLease(lease_); !revoked.ok()) {
      Log(LogLevel::kWarning, "cluster: revoking the lease of node " + options_.node.name + ": " + revoked.ToString());
    }
  }
}

void NodePublisher::Run() {
  const auto tick = std::chrono::duration_cast<std::chrono::milliseconds>(options_.lease_ttl) / 3;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    Status published = PublishOnce();
    lock.lock();
    const std::string error = published.ok() ? "" : published.ToString();
    if (error != last_error_) {
      Log(error.empty() ? LogLevel::kInfo : LogLevel::kWarning,
          error.empty()
              ? "cluster: node " + options_.node.name + " published in etcd"
              : "cluster: publishing node " + options_.node.name + " (forkd serves locally meanwhile): " + error);
      last_error_ = error;
    }
    wake_.wait_for(lock, tick, [this] { return stopping_ || nudged_; });
    nudged_ = false;
  }
}

void NodePublisher::Nudge() {
  {
    std::lock_guard lock(mutex_);
    nudged_ = true;
  }
  wake_.notify_all();
}

Status NodePublisher::PublishOnce() {
  // The claims requests settled before the state is read: their instances are in it, so none is
  // given back as if its instance were gone.
  std::vector<std::string> claimed = names_->TakeClaimed();
  const NodeState state = read_state_();
  std::lock_guard lock(mutex_);
  for (std::string& name : claimed) named_.insert(std::move(name));
  if (lease_ != 0) {
    Result<int64_t> left = etcd_->KeepAlive(lease_);
    if (!left.ok()) return left.status();
    if (*left == 0) {
      Log(LogLevel::kWarning, "cluster: the lease of node " + options_.node.name + " expired; registering again");
      lease_ = 0;
    }
  }
  if (lease_ == 0) return Reconcile(state);
  const std::map<std::string, std::string> leased = LeasedEntries(keys_, options_.node, state);
  FE_RETURN_IF_ERROR(WriteDifference(*etcd_, leased, leased_, lease_));
  leased_ = leased;
  const std::map<std::string, std::string> owned = OwnershipEntries(keys_, options_.node, state);
  FE_RETURN_IF_ERROR(WriteDifference(*etcd_, owned, owned_, 0));
  owned_ = owned;
  return SyncNames(state);
}

Status NodePublisher::SyncNames(const NodeState& state) {
  std::set<std::string> wanted;
  for (const engine::Instance& instance : state.instances) wanted.insert(instance.name);

  const std::string claim = names_->ClaimValue();
  for (const std::string& name : wanted) {
    if (named_.count(name) > 0) continue;
    KeyValue holder;
    FE_ASSIGN_OR_RETURN(bool created, etcd_->CreateIfAbsent(keys_.Name(name), claim, 0, &holder));
    if (created || OwnerOf(holder.value) == options_.node.name) {
      named_.insert(name);
    } else if (conflicts_.insert(name).second) {
      Log(LogLevel::kError, "cluster: instance name '" + name + "' of node " + options_.node.name +
                                " is also claimed by node '" + OwnerOf(holder.value) +
                                "' (made while etcd was unreachable); rename one of them");
    }
  }
  for (auto it = named_.begin(); it != named_.end();) {
    if (wanted.count(*it) > 0 || names_->Pending(*it)) {
      ++it;
      continue;
    }
    FE_RETURN_IF_ERROR(etcd_->DeleteIfValue(keys_.Name(*it), claim).status());
    it = named_.erase(it);
  }
  return Status::Ok();
}

Status NodePublisher::Reconcile(const NodeState& state) {
  FE_ASSIGN_OR_RETURN(int64_t lease, etcd_->GrantLease(options_.lease_ttl));
  // The node name first: one data root per name. A claim of this node id (an earlier run's, on a
  // lease that may not have run out yet) is this node's to take over.
  const std::string claim_key = keys_.NodeClaim(options_.node.name);
  KeyValue holder;
  Result<bool> claimed = etcd_->CreateIfAbsent(claim_key, options_.node.node_id, lease, &holder);
  Status named = claimed.status();
  if (named.ok() && !*claimed) {
    named =
        holder.value == options_.node.node_id
            ? etcd_->Put(claim_key, options_.node.node_id, lease).status()
            : Status::AlreadyExists("node name '" + options_.node.name + "' is held by another live forkd (node id " +
                                    holder.value + ", not this data root's " + options_.node.node_id +
                                    "): not registering; give this forkd another --node-name");
  }
  if (!named.ok()) {
    (void)etcd_->RevokeLease(lease);
    return named;
  }
  // What an earlier run left: its templates and pools (on its lease, if that still lives) and the
  // ownership of instances this node no longer holds.
  std::map<std::string, std::string> found;
  for (const std::string& prefix : {keys_.Templates(options_.node.name), keys_.Pools(options_.node.name)}) {
    FE_ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, etcd_->GetPrefix(prefix));
    for (KeyValue& kv : kvs) found[kv.key] = "(earlier run)";
  }
  const std::map<std::string, std::string> leased = LeasedEntries(keys_, options_.node, state);
  FE_RETURN_IF_ERROR(WriteDifference(*etcd_, leased, found, lease));
  std::map<std::string, std::string> owned_found;
  FE_ASSIGN_OR_RETURN(std::vector<KeyValue> ownership, etcd_->GetPrefix(keys_.Instances()));
  for (KeyValue& kv : ownership) {
    if (OwnerOf(kv.value) == options_.node.name) owned_found[kv.key] = kv.value;
  }
  const std::map<std::string, std::string> owned = OwnershipEntries(keys_, options_.node, state);
  FE_RETURN_IF_ERROR(WriteDifference(*etcd_, owned, owned_found, 0));
  named_.clear();
  FE_ASSIGN_OR_RETURN(std::vector<KeyValue> claims, etcd_->GetPrefix(keys_.Names()));
  for (KeyValue& kv : claims) {
    if (OwnerOf(kv.value) == options_.node.name) named_.insert(kv.key.substr(keys_.Names().size()));
  }
  FE_RETURN_IF_ERROR(SyncNames(state));
  lease_ = lease;
  leased_ = leased;
  owned_ = owned;
  return Status::Ok();
}

}  // namespace fe::engine::cluster
