// What a forkd node publishes in etcd, and under which keys (issue #22). forkd stays the source of
// truth; etcd holds an index a router reads:
//
//   <prefix>node-claims/<node>           the node id holding the node name (one data root per name)
//   <prefix>nodes/<node>                 the node: API address, version, hypervisors, CPU model,
//                                        storage and free space, CPU budget and use, draining
//   <prefix>templates/<node>/<id>        an instance others may fork (Standby, or a pool's template)
//   <prefix>pools/<node>/<pool>          a pool: its template, ready members, min, max
//   <prefix>instances/<id>               instance -> node ownership
//   <prefix>names/<name>                 cluster-unique instance names (name_reservations.h)
//
// with <prefix> = /forkengine/v1/<cluster>/. The node, template and pool keys hang on the node's
// lease: when the node dies they vanish with it and it gets no placements. Ownership and name keys
// do not: a dead node's instances are reported unreachable, not forgotten, and keep their names.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/pools/pool.h"

namespace fe::engine::cluster {

class ClusterKeys {
 public:
  explicit ClusterKeys(std::string cluster);
  const std::string& prefix() const { return prefix_; }
  std::string Node(std::string_view node) const;
  std::string NodeClaim(std::string_view node) const;
  std::string Nodes() const;
  std::string Templates(std::string_view node) const;  // every template key of `node` starts with it
  std::string Pools(std::string_view node) const;
  std::string Instance(std::string_view id) const;
  std::string Instances() const;
  std::string Name(std::string_view name) const;
  std::string Names() const;

 private:
  std::string prefix_;
};

// Who the node is: fixed for its lifetime (forkd's options and the host).
struct NodeIdentity {
  std::string name;
  // Which data root this is (LoadOrCreateNodeId): a restart of the same node keeps it, another forkd
  // given the same name has another, and is refused the name while this one lives.
  std::string node_id;
  std::string api;  // its TCP API, HOST:PORT (empty: none, the router cannot forward to it)
  std::string version;
  std::vector<std::string> hypervisors;
  std::string cpu_model;  // /proc/cpuinfo's "model name"
};

// The node's state now, read from its engine and pools.
struct NodeState {
  std::vector<engine::Instance> instances;
  std::string storage_backend;
  uint64_t storage_free_bytes = 0;
  std::vector<engine::pools::PoolStatus> pools;
  int cpu_budget_vcpus = 0;
  int cpu_used_vcpus = 0;
  bool draining = false;
};

// The leased keys and their JSON values: the node, its templates, its pools.
std::map<std::string, std::string> LeasedEntries(const ClusterKeys& keys, const NodeIdentity& node,
                                                 const NodeState& state);
// The ownership keys of the node's instances and their JSON values ({"node", "name"}).
std::map<std::string, std::string> OwnershipEntries(const ClusterKeys& keys, const NodeIdentity& node,
                                                    const NodeState& state);
// The node a published ownership value names ("" when it names none).
std::string OwnerOf(const std::string& ownership_value);

// The node id kept in `path` (the data root's cluster-node-id), made (32 random hex digits, written
// durably) when the file does not exist yet.
Result<std::string> LoadOrCreateNodeId(const std::string& path);

// /proc/cpuinfo's first "model name" ("" when it has none).
std::string HostCpuModel();

}  // namespace fe::engine::cluster
