// Cluster-unique instance names (issue #22). A name is claimed in etcd (<prefix>names/<name> ->
// {"node"}) with a create-if-absent transaction before the node admits the instance, so two nodes
// never make instances of one name. A name this node already holds is its own to reuse (the engine
// then says whether such an instance exists); one another node holds is AlreadyExists naming it.
//
// Names stay claimed while their instance lives, also when its node is dead. The publisher
// (node_publisher.h) keeps the claims in step with the node's instances each round: it claims what a
// rename or a pool member got, and gives back what a delete freed, but never a name a request is
// still making an instance of (Pending).
//
// etcd unreachable: Reserve lets the request through with a warning (forkd serves locally); the
// publisher claims the instance's name when etcd answers again and logs a conflict if another node
// took it meanwhile.
//
// Threads: every method may be called concurrently.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/cluster/etcd_client.h"
#include "engine/cluster/node_state.h"

namespace fe::engine::cluster {

class NameReservations {
 public:
  NameReservations(std::shared_ptr<EtcdClient> etcd, ClusterKeys keys, std::string node);

  // Claims every name (all or nothing) and marks them pending; AlreadyExists naming the name and the
  // node holding it. Each successful Reserve is followed by one Settle of the same names.
  Status Reserve(const std::vector<std::string>& names);
  // The request is done: the names are no longer pending. `made`: its instances exist; otherwise
  // the claims this Reserve made are given back.
  void Settle(const std::vector<std::string>& names, bool made);
  bool Pending(const std::string& name) const;
  // The names requests claimed and made instances of since the last call: the publisher's to keep
  // (and to give back once their instance is gone).
  std::vector<std::string> TakeClaimed();
  // Called after a Settle whose instances were made (from the request's thread): the publisher's
  // nudge. Null: none.
  void SetOnMade(std::function<void()> on_made);

  // The value a claim of this node holds.
  std::string ClaimValue() const;
  std::string Key(const std::string& name) const { return keys_.Name(name); }
  // The node claims are made for.
  const std::string& node() const { return node_; }

 private:
  std::shared_ptr<EtcdClient> etcd_;
  ClusterKeys keys_;
  std::string node_;
  mutable std::mutex mutex_;
  std::map<std::string, int> pending_;  // name -> requests making it
  std::vector<std::string> claimed_;    // made since the last TakeClaimed
  std::function<void()> on_made_;
};

}  // namespace fe::engine::cluster
