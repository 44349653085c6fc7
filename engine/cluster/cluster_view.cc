#include "engine/cluster/cluster_view.h"

#include <map>

#include "engine/cluster/cluster_index.h"

namespace fe::engine::cluster {

ClusterView::ClusterView(std::shared_ptr<EtcdClient> etcd, ClusterKeys keys)
    : etcd_(std::move(etcd)), keys_(std::move(keys)) {}

Result<std::vector<nlohmann::json>> ClusterView::Nodes() const {
  std::map<std::string, std::string> entries;
  for (const std::string& prefix : {keys_.Nodes(), keys_.prefix() + "templates/", keys_.prefix() + "pools/"}) {
    FE_ASSIGN_OR_RETURN(std::vector<KeyValue> kvs, etcd_->GetPrefix(prefix));
    for (KeyValue& kv : kvs) entries[kv.key] = std::move(kv.value);
  }
  return NodesView(IndexFromEntries(keys_, entries));
}

}  // namespace fe::engine::cluster
