// The cluster as etcd's index shows it now (node_state.h): the live nodes with what each publishes,
// and how many templates and pools each holds. Read by GET /v1/nodes on any node (and, next, by the
// router).
#pragma once

#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "engine/cluster/etcd_client.h"
#include "engine/cluster/node_state.h"

namespace fe::engine::cluster {

class ClusterView {
 public:
  ClusterView(std::shared_ptr<EtcdClient> etcd, ClusterKeys keys);

  // Every live node (one whose lease holds its key), by name: the node's published object plus
  // "templates" and "pools" (how many it holds). Unavailable when etcd does not answer.
  Result<std::vector<nlohmann::json>> Nodes() const;

 private:
  std::shared_ptr<EtcdClient> etcd_;
  ClusterKeys keys_;
};

}  // namespace fe::engine::cluster
