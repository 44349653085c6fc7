#include "engine/cluster/cluster_view.h"

#include <map>

namespace fe::engine::cluster {
namespace {

// The node a key under <prefix>templates/<node>/ or <prefix>pools/<node>/ belongs to.
std::string NodeOfKey(const std::string& key, const std::string& prefix) {
  const size_t slash = key.find('/', prefix.size());
  return slash == std::string::npos ? std::string() : key.substr(prefix.size(), slash - prefix.size());
}

}  // namespace

ClusterView::ClusterView(std::shared_ptr<EtcdClient> etcd, ClusterKeys keys)
    : etcd_(std::move(etcd)), keys_(std::move(keys)) {}

Result<std::vector<nlohmann::json>> ClusterView::Nodes() const {
  FE_ASSIGN_OR_RETURN(std::vector<KeyValue> nodes, etcd_->GetPrefix(keys_.Nodes()));
  std::map<std::string, int> templates, pools;
  const std::string templates_prefix = keys_.prefix() + "templates/";
  const std::string pools_prefix = keys_.prefix() + "pools/";
  FE_ASSIGN_OR_RETURN(std::vector<KeyValue> template_keys, etcd_->GetPrefix(templates_prefix));
  for (const KeyValue& kv : template_keys) ++templates[NodeOfKey(kv.key, templates_prefix)];
  FE_ASSIGN_OR_RETURN(std::vector<KeyValue> pool_keys, etcd_->GetPrefix(pools_prefix));
  for (const KeyValue& kv : pool_keys) ++pools[NodeOfKey(kv.key, pools_prefix)];
  std::vector<nlohmann::json> view;
  for (const KeyValue& kv : nodes) {
    nlohmann::json node = nlohmann::json::parse(kv.value, nullptr, false);
    if (!node.is_object() || !node.contains("name") || !node["name"].is_string()) {
      return Status::InvalidContent("etcd key " + kv.key + ": not a node object");
    }
    const std::string name = node["name"];
    node["templates"] = templates[name];
    node["pools"] = pools[name];
    view.push_back(std::move(node));
  }
  return view;
}

}  // namespace fe::engine::cluster
