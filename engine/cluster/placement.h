// Where a new instance goes in the cluster (issue #22), decided from the index alone (no I/O):
//
//   1. candidates: the nodes holding the template when the request names one (else every node);
//   2. eligible: alive (in the index), an API to forward to, not draining, running the hypervisor,
//      of the CPU model asked for (a memory snapshot restores only on the CPU it was taken on), with
//      the vCPUs free under its budget (a node without a budget has no limit);
//   3. order: nodes with ready pool members of the template first, most ready first (the acquire
//      path: a warm fork); then the best of K eligible nodes picked at random, by committed CPU (the
//      power of K choices: close to the least loaded without every router herding onto the same
//      node), then the rest by committed CPU, as the fallbacks a refused forward tries next.
//
// InsufficientResources when no node is eligible, saying why for each candidate.
#pragma once

#include <random>
#include <string>
#include <vector>

#include "base/status.h"
#include "engine/cluster/cluster_index.h"

namespace fe::engine::cluster {

struct PlacementNeed {
  std::vector<std::string> holders;  // non-empty: only these nodes (they hold the template)
  std::string template_id;           // the template, for its pools' ready members ("" none)
  std::string hypervisor;            // "" any
  std::string cpu_model;             // "" any
  int vcpus = 1;                     // what the request commits, all instances together
};

// Committed CPU as a fraction of the budget (used / budget; a node without a budget counts its used
// vCPUs against 1024, so an idle node ranks before a busy one).
double CommittedCpu(const NodeInfo& node);

// Why `node` cannot take `need` ("" when it can).
std::string Ineligible(const NodeInfo& node, const PlacementNeed& need);

// The eligible nodes, best first (see the file comment); `k` of them sampled for the first choice.
Result<std::vector<std::string>> RankNodes(const ClusterIndex& index, const PlacementNeed& need,
                                           std::mt19937_64& random, size_t k = 2);

// A fan-out of `count` instances of `one.vcpus` each that no single node takes, split across the
// `nodes` eligible for one of them (in the order given, ranked): the parts (node, instances), taken
// from the nodes with the most room first, as few nodes as that allows. A node without a CPU budget
// has room for all. InsufficientResources, saying each node's room, when together they lack it.
Result<std::vector<std::pair<std::string, int>>> SplitCount(const ClusterIndex& index,
                                                            const std::vector<std::string>& nodes,
                                                            const PlacementNeed& one, int count);

}  // namespace fe::engine::cluster
