#include "engine/cluster/cluster_index.h"

namespace fe::engine::cluster {
namespace {

using Json = nlohmann::json;

// "<node>/<rest>" after `prefix`: the node, and the rest in *rest.
std::string SplitNode(const std::string& key, const std::string& prefix, std::string* rest) {
  const size_t slash = key.find('/', prefix.size());
  if (slash == std::string::npos) return "";
  *rest = key.substr(slash + 1);
  return key.substr(prefix.size(), slash - prefix.size());
}

template <typename T>
T Field(const Json& object, const char* name, T fallback) {
  if (!object.is_object() || !object.contains(name)) return fallback;
  const Json& value = object[name];
  if constexpr (std::is_same_v<T, std::string>) {
    return value.is_string() ? value.get<std::string>() : fallback;
  } else if constexpr (std::is_same_v<T, bool>) {
    return value.is_boolean() ? value.get<bool>() : fallback;
  } else {
    return value.is_number() ? value.get<T>() : fallback;
  }
}

bool ParseNode(const Json& value, NodeInfo* node) {
  if (!value.is_object() || Field<std::string>(value, "name", "").empty()) return false;
  node->name = value["name"];
  node->api = Field<std::string>(value, "api", "");
  if (value.contains("hypervisors") && value["hypervisors"].is_array()) {
    for (const Json& kind : value["hypervisors"]) {
      if (kind.is_string()) node->hypervisors.push_back(kind);
    }
  }
  node->cpu_model = Field<std::string>(value, "cpu_model", "");
  const Json storage = value.value("storage", Json::object());
  node->storage_free_bytes = Field<uint64_t>(storage, "free_bytes", 0);
  const Json cpu = value.value("cpu", Json::object());
  node->cpu_budget_vcpus = Field<int>(cpu, "budget_vcpus", 0);
  node->cpu_used_vcpus = Field<int>(cpu, "used_vcpus", 0);
  node->draining = Field<bool>(value, "draining", false);
  node->published = value;
  return true;
}

}  // namespace

const NodeInfo* ClusterIndex::Node(const std::string& name) const {
  auto it = nodes.find(name);
  return it == nodes.end() ? nullptr : &it->second;
}

std::string ClusterIndex::OwnerOf(const std::string& id_or_name) const {
  auto it = instances.find(id_or_name);
  if (it == instances.end()) {
    auto named = ids_by_name.find(id_or_name);
    if (named != ids_by_name.end()) it = instances.find(named->second);
  }
  return it == instances.end() ? std::string() : it->second.node;
}

ClusterIndex IndexFromEntries(const ClusterKeys& keys, const std::map<std::string, std::string>& entries) {
  ClusterIndex index;
  const std::string templates = keys.prefix() + "templates/";
  const std::string pools = keys.prefix() + "pools/";
  for (const auto& [key, text] : entries) {
    if (key.rfind(keys.Nodes(), 0) != 0) continue;
    NodeInfo node;
    if (ParseNode(Json::parse(text, nullptr, false), &node)) index.nodes[node.name] = std::move(node);
  }
  for (const auto& [key, text] : entries) {
    std::string rest;
    const Json value = Json::parse(text, nullptr, false);
    if (!value.is_object()) continue;
    if (key.rfind(templates, 0) == 0) {
      const std::string node = SplitNode(key, templates, &rest);
      if (index.nodes.count(node) == 0) continue;
      index.templates.push_back(
          TemplateInfo{node, rest, Field<std::string>(value, "name", ""), Field<std::string>(value, "hypervisor", ""),
                       Field<std::string>(value, "state", ""), Field<int>(value, "vcpus", 1),
                       Field<std::string>(value, "content_hash", ""), Field<std::string>(value, "original", "")});
    } else if (key.rfind(pools, 0) == 0) {
      const std::string node = SplitNode(key, pools, &rest);
      if (index.nodes.count(node) == 0) continue;
      index.pools.push_back(PoolInfo{node, rest, Field<std::string>(value, "template", ""),
                                     Field<int>(value, "ready", 0), Field<int>(value, "min_size", 0),
                                     Field<int>(value, "max_size", 0)});
    } else if (key.rfind(keys.Instances(), 0) == 0) {
      const std::string id = key.substr(keys.Instances().size());
      index.instances[id] = Ownership{Field<std::string>(value, "node", ""), Field<std::string>(value, "name", "")};
      if (!index.instances[id].name.empty()) index.ids_by_name[index.instances[id].name] = id;
    }
  }
  return index;
}

std::vector<nlohmann::json> NodesView(const ClusterIndex& index) {
  std::map<std::string, int> templates, pools;
  for (const TemplateInfo& held : index.templates) ++templates[held.node];
  for (const PoolInfo& pool : index.pools) ++pools[pool.node];
  std::vector<Json> view;
  for (const auto& [name, node] : index.nodes) {
    Json published = node.published;
    published["templates"] = templates[name];
    published["pools"] = pools[name];
    view.push_back(std::move(published));
  }
  return view;
}

}  // namespace fe::engine::cluster
