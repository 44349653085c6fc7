#include "engine/cluster/node_state.h"

#include <sys/random.h>

#include <cerrno>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"

namespace fe::engine::cluster {

using Json = nlohmann::json;

ClusterKeys::ClusterKeys(std::string cluster) : prefix_("/forkengine/v1/" + std::move(cluster) + "/") {}
std::string ClusterKeys::Node(std::string_view node) const { return Nodes() + std::string(node); }
std::string ClusterKeys::Nodes() const { return prefix_ + "nodes/"; }
std::string ClusterKeys::NodeClaim(std::string_view node) const { return prefix_ + "node-claims/" + std::string(node); }
std::string ClusterKeys::Templates(std::string_view node) const {
  return prefix_ + "templates/" + std::string(node) + "/";
}
std::string ClusterKeys::Pools(std::string_view node) const { return prefix_ + "pools/" + std::string(node) + "/"; }
std::string ClusterKeys::Instance(std::string_view id) const { return Instances() + std::string(id); }
std::string ClusterKeys::Instances() const { return prefix_ + "instances/"; }
std::string ClusterKeys::Name(std::string_view name) const { return Names() + std::string(name); }
std::string ClusterKeys::Names() const { return prefix_ + "names/"; }

std::map<std::string, std::string> LeasedEntries(const ClusterKeys& keys, const NodeIdentity& node,
                                                 const NodeState& state) {
  std::map<std::string, std::string> entries;
  entries[keys.Node(node.name)] = Json{
      {"name", node.name},
      {"api", node.api},
      {"version", node.version},
      {"hypervisors", node.hypervisors},
      {"cpu_model", node.cpu_model},
      {"storage", {{"backend", state.storage_backend}, {"free_bytes", state.storage_free_bytes}}},
      {"cpu", {{"budget_vcpus", state.cpu_budget_vcpus}, {"used_vcpus", state.cpu_used_vcpus}}},
      {"draining", state.draining}}.dump();
  // Templates: what others may fork here. Every marked template and every pool's template, whatever
  // its state, and every Standby instance that is no pool member (forked at this node only: unmarked,
  // its files may change, so it is never replicated).
  std::set<std::string> pool_templates;
  for (const engine::pools::PoolStatus& pool : state.pools) pool_templates.insert(pool.spec.template_id);
  for (const engine::Instance& instance : state.instances) {
    const bool standby = instance.state == engine::InstanceState::kStandby && instance.pool.empty();
    if (!standby && !instance.template_mark && pool_templates.count(instance.id) == 0) continue;
    Json published{{"id", instance.id},
                   {"name", instance.name},
                   {"hypervisor", instance.hypervisor},
                   {"state", engine::InstanceStateName(instance.state)},
                   {"vcpus", instance.vcpus}};
    // A marked template (engine/instance.h TemplateMark) may be replicated: its replicas on other nodes
    // publish the original's id, so a router sees every holder of one template.
    if (instance.template_mark) {
      published["content_hash"] = instance.template_mark->content_hash;
      published["original"] =
          instance.template_mark->replica_of.empty() ? instance.id : instance.template_mark->replica_of;
    }
    entries[keys.Templates(node.name) + instance.id] = published.dump();
  }
  for (const engine::pools::PoolStatus& pool : state.pools) {
    entries[keys.Pools(node.name) + pool.spec.name] = Json{
        {"name", pool.spec.name},
        {"template", pool.spec.template_id},
        {"ready", pool.ready},
        {"min_size", pool.spec.min_size},
        {"max_size", pool.spec.max_size}}.dump();
  }
  return entries;
}

std::map<std::string, std::string> OwnershipEntries(const ClusterKeys& keys, const NodeIdentity& node,
                                                    const NodeState& state) {
  std::map<std::string, std::string> entries;
  for (const engine::Instance& instance : state.instances) {
    entries[keys.Instance(instance.id)] = Json{{"node", node.name}, {"name", instance.name}}.dump();
  }
  return entries;
}

std::string OwnerOf(const std::string& ownership_value) {
  const Json value = Json::parse(ownership_value, nullptr, false);
  return value.is_object() && value.contains("node") && value["node"].is_string() ? value["node"].get<std::string>()
                                                                                  : std::string();
}

Result<std::string> LoadOrCreateNodeId(const std::string& path) {
  Result<std::string> kept = ReadSmallFile(path, 256);
  if (kept.ok()) {
    std::string id = *kept;
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    if (id.empty()) return Status::InvalidContent(path + ": empty node id (remove the file to make a new one)");
    return id;
  }
  if (kept.status().code() != ErrorCode::kNotFound) return kept.status();
  unsigned char bytes[16];
  if (::getrandom(bytes, sizeof(bytes), 0) != static_cast<ssize_t>(sizeof(bytes))) {
    return Status::FromErrno(errno, "getrandom for the node id in", path);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char byte : bytes) {
    id.push_back(kHex[byte >> 4]);
    id.push_back(kHex[byte & 0x0f]);
  }
  FE_RETURN_IF_ERROR(ReplaceFileDurably(path, id + "\n", 0600));
  return id;
}

std::string HostCpuModel() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const size_t start = line.find_first_not_of(' ', colon + 1);
    return start == std::string::npos ? std::string() : line.substr(start);
  }
  return "";
}

}  // namespace fe::engine::cluster
