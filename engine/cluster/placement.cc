#include "engine/cluster/placement.h"

#include <algorithm>
#include <map>

namespace fe::engine::cluster {

double CommittedCpu(const NodeInfo& node) {
  return static_cast<double>(node.cpu_used_vcpus) / (node.cpu_budget_vcpus > 0 ? node.cpu_budget_vcpus : 1024);
}

std::string Ineligible(const NodeInfo& node, const PlacementNeed& need) {
  if (node.api.empty()) return "publishes no API address";
  if (node.draining) return "is draining";
  if (!need.hypervisor.empty() &&
      std::find(node.hypervisors.begin(), node.hypervisors.end(), need.hypervisor) == node.hypervisors.end()) {
    return "has no " + need.hypervisor;
  }
  if (!need.cpu_model.empty() && node.cpu_model != need.cpu_model) {
    return "has CPU '" + node.cpu_model + "', not '" + need.cpu_model + "'";
  }
  if (node.cpu_budget_vcpus > 0 && node.cpu_budget_vcpus - node.cpu_used_vcpus < need.vcpus) {
    return "has " + std::to_string(std::max(0, node.cpu_budget_vcpus - node.cpu_used_vcpus)) + " of " +
           std::to_string(need.vcpus) + " vCPUs free";
  }
  return "";
}

Result<std::vector<std::string>> RankNodes(const ClusterIndex& index, const PlacementNeed& need,
                                           std::mt19937_64& random, size_t k) {
  std::vector<std::string> candidates = need.holders;
  if (candidates.empty()) {
    for (const auto& [name, node] : index.nodes) candidates.push_back(name);
  }
  std::vector<const NodeInfo*> eligible;
  std::string refusals;
  for (const std::string& name : candidates) {
    const NodeInfo* node = index.Node(name);
    const std::string why = node == nullptr ? "is not alive" : Ineligible(*node, need);
    if (why.empty()) {
      eligible.push_back(node);
    } else {
      refusals += (refusals.empty() ? "" : "; ") + name + " " + why;
    }
  }
  if (eligible.empty()) {
    return Status::InsufficientResources(
        "no node can take it" + (refusals.empty() ? std::string(": the cluster has no live node") : ": " + refusals));
  }
  std::map<std::string, int> ready;
  for (const PoolInfo& pool : index.pools) {
    if (!need.template_id.empty() && pool.template_id == need.template_id) ready[pool.node] += pool.ready;
  }
  auto by_load = [](const NodeInfo* a, const NodeInfo* b) {
    return CommittedCpu(*a) != CommittedCpu(*b) ? CommittedCpu(*a) < CommittedCpu(*b) : a->name < b->name;
  };
  std::vector<const NodeInfo*> warm, cold;
  for (const NodeInfo* node : eligible) (ready[node->name] > 0 ? warm : cold).push_back(node);
  std::sort(warm.begin(), warm.end(), [&](const NodeInfo* a, const NodeInfo* b) {
    return ready[a->name] != ready[b->name] ? ready[a->name] > ready[b->name] : by_load(a, b);
  });
  std::sort(cold.begin(), cold.end(), by_load);
  if (cold.size() > 1 && k > 0) {
    std::vector<const NodeInfo*> sampled;
    std::sample(cold.begin(), cold.end(), std::back_inserter(sampled), std::min(k, cold.size()), random);
    // Among equally loaded samples the first after a shuffle: a tie must not always go to one name.
    std::shuffle(sampled.begin(), sampled.end(), random);
    const NodeInfo* best = *std::min_element(sampled.begin(), sampled.end(), [](const NodeInfo* a, const NodeInfo* b) {
      return CommittedCpu(*a) < CommittedCpu(*b);
    });
    cold.erase(std::find(cold.begin(), cold.end(), best));
    cold.insert(cold.begin(), best);
  }
  std::vector<std::string> ranked;
  for (const NodeInfo* node : warm) ranked.push_back(node->name);
  for (const NodeInfo* node : cold) ranked.push_back(node->name);
  return ranked;
}

Result<std::vector<std::pair<std::string, int>>> SplitCount(const ClusterIndex& index,
                                                            const std::vector<std::string>& nodes,
                                                            const PlacementNeed& one, int count) {
  std::vector<std::pair<std::string, int>> room;
  std::string said;
  for (const std::string& name : nodes) {
    const NodeInfo* node = index.Node(name);
    if (node == nullptr || !Ineligible(*node, one).empty()) continue;
    const int fits = node->cpu_budget_vcpus > 0
                         ? (node->cpu_budget_vcpus - node->cpu_used_vcpus) / std::max(1, one.vcpus)
                         : count;
    room.emplace_back(name, std::min(fits, count));
    said += (said.empty() ? "" : ", ") + name + " " + std::to_string(fits);
  }
  std::stable_sort(room.begin(), room.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::pair<std::string, int>> parts;
  int left = count;
  for (const auto& [name, fits] : room) {
    if (left == 0) break;
    if (fits == 0) continue;
    parts.emplace_back(name, std::min(fits, left));
    left -= parts.back().second;
  }
  if (left > 0) {
    return Status::InsufficientResources("room for " + std::to_string(count - left) + " of " + std::to_string(count) +
                                         " instances of " + std::to_string(one.vcpus) + " vCPUs across the nodes (" +
                                         (said.empty() ? std::string("none eligible") : said) + ")");
  }
  return parts;
}

}  // namespace fe::engine::cluster
