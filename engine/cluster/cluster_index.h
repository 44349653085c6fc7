// The cluster's index as one value: every published key of a cluster (node_state.h) parsed into the
// live nodes, the templates and pools they hold, and instance ownership. Built from etcd's keys by
// whoever read them (ClusterView's one range, the router's watch-fed ClusterCache), so both read the
// index the same way.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/cluster/node_state.h"

namespace fe::engine::cluster {

struct NodeInfo {
  std::string name;
  std::string api;  // HOST:PORT of its TCP API; empty: it takes no forwarded requests
  std::vector<std::string> hypervisors;
  std::string cpu_model;
  uint64_t storage_free_bytes = 0;
  int cpu_budget_vcpus = 0;  // 0: no budget (no limit)
  int cpu_used_vcpus = 0;
  bool draining = false;
  nlohmann::json published;  // the node's object as published
};

struct TemplateInfo {
  std::string node;
  std::string id;
  std::string name;
  std::string hypervisor;
  std::string state;
  int vcpus = 1;
  std::string content_hash;  // a marked template's ("" for one that is not: it is forked at its node only)
  std::string original;      // the original template's id: its own, or the one it replicates
};

struct PoolInfo {
  std::string node;
  std::string name;
  std::string template_id;
  int ready = 0;
  int min_size = 0;
  int max_size = 0;
};

struct Ownership {
  std::string node;
  std::string name;
};

struct ClusterIndex {
  std::map<std::string, NodeInfo> nodes;           // the live nodes (their lease holds), by name
  std::vector<TemplateInfo> templates;             // of live nodes only
  std::vector<PoolInfo> pools;                     // of live nodes only
  std::map<std::string, Ownership> instances;      // every instance id -> its node, live or not
  std::map<std::string, std::string> ids_by_name;  // instance names are cluster-unique
  int64_t revision = 0;                            // the etcd revision the index shows

  const NodeInfo* Node(const std::string& name) const;
  // The node holding the instance of id or name `id_or_name` ("" when the index does not know it).
  std::string OwnerOf(const std::string& id_or_name) const;
};

// The index of every key under `keys.prefix()` (key -> value). A value that does not parse is left
// out (a node or template written by a newer forkd must not take the router down).
ClusterIndex IndexFromEntries(const ClusterKeys& keys, const std::map<std::string, std::string>& entries);

// GET /v1/nodes: each live node's published object plus how many templates and pools it holds.
std::vector<nlohmann::json> NodesView(const ClusterIndex& index);

}  // namespace fe::engine::cluster
