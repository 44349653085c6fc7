// Keeps a forkd node's entries in etcd (node_state.h) while it runs: a lease kept alive, the leased
// entries rewritten when they change, the ownership entries reconciled with the node's instances.
//
// At start (and whenever the lease was lost: etcd unreachable longer than its TTL, a partition) it
// reconciles: grants a new lease, writes every entry, and removes what it finds of its own that
// its metadata no longer has (templates and pools left on an older lease by a previous run, ownership
// and name claims of instances it no longer holds). Then every ttl/3 it renews the lease and writes
// what changed, name claims included.
//
// etcd being unreachable never stops forkd: the publisher logs the error once, keeps the last state,
// and retries on the next tick; forkd serves its local API as before.
//
// Threads: one thread of its own; the state function is called from it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "engine/cluster/etcd_client.h"
#include "engine/cluster/name_reservations.h"
#include "engine/cluster/node_state.h"

namespace fe::engine::cluster {

struct PublisherOptions {
  std::string cluster = "default";
  NodeIdentity node;
  std::chrono::seconds lease_ttl{10};
};

class NodePublisher {
 public:
  // `names`: the node's name claims (name_reservations.h), kept in step with its instances.
  NodePublisher(std::shared_ptr<EtcdClient> etcd, PublisherOptions options, std::function<NodeState()> read_state,
                std::shared_ptr<NameReservations> names);
  // Stops the thread and revokes the lease: the node's leased entries vanish at once (a node that
  // stops cleanly gets no more placements); ownership entries stay, its VMs live on.
  ~NodePublisher();
  NodePublisher(const NodePublisher&) = delete;
  NodePublisher& operator=(const NodePublisher&) = delete;

  // Runs one round now (the thread runs them every ttl/3): for tests and the start.
  Status PublishOnce();
  // Asks the thread for a round at once (coalesced): a new instance's ownership is in the index
  // before its maker's next request, not a round later.
  void Nudge();

 private:
  void Run();
  Status Reconcile(const NodeState& state);
  // Claims the names of the node's instances it has not claimed, gives back those of instances gone.
  Status SyncNames(const NodeState& state);

  std::shared_ptr<EtcdClient> etcd_;
  PublisherOptions options_;
  ClusterKeys keys_;
  std::function<NodeState()> read_state_;
  std::shared_ptr<NameReservations> names_;
  std::mutex mutex_;  // guards what follows; one round at a time
  int64_t lease_ = 0;
  std::map<std::string, std::string> leased_;  // what is written on lease_
  std::map<std::string, std::string> owned_;   // ownership entries written since the last reconcile
  std::set<std::string> named_;                // names this node holds a claim of
  std::set<std::string> conflicts_;            // names another node took (logged once)
  std::string last_error_;
  bool stopping_ = false;
  bool nudged_ = false;
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace fe::engine::cluster
