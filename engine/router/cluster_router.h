// forkrouter's API (issue #22): the /v1 API of forkd in front of a cluster of forkd nodes. Stateless:
// all it knows is the index the nodes publish in etcd, kept by a watch (engine/cluster/cluster_cache.h),
// so any number of routers may run, and a router restarts with nothing to recover.
//
// Each route goes where its answer is:
//   instances/{id}/...        the node owning the instance (its ownership key); 503 naming the node
//                             when that node is not alive (its instances are unreachable, not gone)
//   POST /v1/instances        the node `node` names in the body, else one placed by
//                             engine/cluster/placement.h (hypervisor, vCPUs free, best of K by
//                             committed CPU), trying the next on 503, 507 or a 409 for capacity
//   GET /v1/instances, pools  every live node's answer merged, each instance and pool with `node`;
//                             instances whose node does not answer are listed under `unreachable`
//   instances/{id}/fork       of a marked template: among the nodes holding it or a replica of it
//                             (placement as for a create), each asked with its own copy's id; a
//                             fan-out no holder takes whole is split across them (all or nothing);
//                             when they lack room, the template is replicated to a node that has
//                             (template_replication.cc) and forked there. Else: the owner
//   pools/{name}/acquire      the node with the most ready members of a pool of that name
//   uploads/...               node-local (422), as storage
//   GET /v1/nodes, healthz    the router's own index
//   storage, metrics, events  node-local: 422 naming the nodes' own APIs (GET /v1/nodes has them)
// Every instance a node answers gets `node` (its name). Requests go to the node's TCP API with the
// nodes' bearer token; the Idempotency-Key header travels with them.
//
// etcd without quorum: a change (any POST or DELETE) is refused with 503 before it is forwarded, as
// a node would admit it on its local state alone (its name claims wait for etcd); reads are served
// from the last index. The check is a linearizable read, reused for `quorum_check_ttl`.
//
// Threads: Serve is called from the transport's workers concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/http/http_client.h"
#include "engine/cluster/cluster_cache.h"
#include "engine/cluster/etcd_client.h"
#include "engine/forkd/http_server.h"
#include "engine/instance_query.h"

namespace fe::engine::router {

struct RouterOptions {
  std::string node_token;                         // "Authorization: Bearer" for the nodes' TCP APIs ("" none)
  std::chrono::milliseconds node_timeout{60000};  // a fork of many instances takes seconds
  std::chrono::milliseconds quorum_check_ttl{250};
  size_t best_of = 2;
};

class ClusterRouter {
 public:
  ClusterRouter(cluster::ClusterCache& cache, std::shared_ptr<cluster::EtcdClient> etcd, cluster::ClusterKeys keys,
                RouterOptions options);

  // The transport's callbacks (the same request log and JSON error bodies as forkd).
  forkd::HttpHandlers Handlers();
  forkd::HttpResponse Serve(const forkd::HttpRequest& request);

  // Every (method, pattern) the router answers: forkd's route table, which a test compares.
  static std::vector<std::pair<std::string, std::string>> Routes();

 private:
  using Reply = forkd::HttpResponse;
  using Request = forkd::HttpRequest;
  using Params = std::vector<std::string>;
  struct Route;
  static const std::vector<Route>& Table();

  Reply Health(const Request&, const Params&);
  Reply Nodes(const Request&, const Params&);
  Reply ListInstances(const Request&, const Params&);
  Reply ListSnapshots(const Request&, const Params&);
  // Forwards to the live node that answers GET /v1/snapshots/{id}; 404 when none does.
  Reply ToSnapshotOwner(const Request&, const Params&);
  // The first `limit` (0: all) of every live node's page of GET /v1/<collection> with the request's
  // query, in the listing's order ((<time_field>, id)); whether more follow; which nodes answered.
  struct MergedPage {
    nlohmann::json items = nlohmann::json::array();
    bool more = false;
    std::optional<engine::PageCursor> last;
    std::set<std::string> answered;
  };
  MergedPage MergePages(const Request& request, const std::string& collection, const char* time_field,
                        size_t limit) const;
  Reply CreateInstance(const Request&, const Params&);
  Reply ToOwner(const Request&, const Params&);
  Reply NodeLocal(const Request&, const Params&);
  Reply ListPools(const Request&, const Params&);
  Reply CreatePool(const Request&, const Params&);
  Reply ToPoolNode(const Request&, const Params&);
  Reply Acquire(const Request&, const Params&);
  // template_replication.cc
  Reply ForkInstance(const Request&, const Params&);
  // Forks `body`'s count in `parts` (node, instances), each on that node's copy (copy_ids), the names
  // numbered on from part to part; when a part fails, the forks of the others are deleted.
  Reply ForkInParts(const Request& request, const nlohmann::json& body,
                    const std::vector<std::pair<std::string, int>>& parts,
                    const std::map<std::string, std::string>& copy_ids);
  // Copies template `source` (its node's copy) to node `target` through an upload, and imports it
  // there: the replica's id on `target`.
  Result<std::string> Replicate(const cluster::TemplateInfo& source, const std::string& target);
  // Sends one request of the router's own to `node`: its answer (any status), or Unavailable.
  Result<Reply> Call(const std::string& node, const std::string& method, const std::string& target,
                     const std::string& body, const std::string& content_type = "") const;

  // Sends `request` (with `body` instead of its own) to `node`; the node's answer with `node` added
  // to every instance in it, or Unavailable naming the node when it gives none.
  Result<Reply> Forward(const cluster::NodeInfo& node, const Request& request, const std::string& body) const;
  // Forwards to each node of `ranked` in turn until one takes it (see the file comment).
  Reply ForwardToFirstTaker(const std::vector<std::string>& ranked, const Request& request, const std::string& body);
  // GET `path` on every live node at once: each node's JSON answer, or its failure.
  std::vector<std::pair<std::string, Result<nlohmann::json>>> AskEveryNode(const std::string& path) const;
  // The node holding instance `id` (an id or a name): the index's, else the live node that knows it;
  // "" when none does.
  std::string FindOwner(const std::string& id) const;
  // The client of `node`'s API, its connections kept for the next request (made once per address).
  Result<http::HttpClient> NodeClient(const cluster::NodeInfo& node) const;
  // OK when etcd has quorum (see the file comment); Unavailable saying changes are refused.
  Status CheckQuorum();

  cluster::ClusterCache& cache_;
  std::shared_ptr<cluster::EtcdClient> etcd_;
  cluster::ClusterKeys keys_;
  RouterOptions options_;
  std::mutex mutex_;  // random_, quorum_ok_until_
  std::mt19937_64 random_;
  std::chrono::steady_clock::time_point quorum_ok_until_{};
  mutable std::mutex clients_mutex_;
  mutable std::map<std::string, std::pair<std::string, http::HttpClient>> clients_;  // node -> (api, client)
  // One replication at a time per router: two forks that both find no room would otherwise both copy.
  std::mutex replication_mutex_;
};

// RFC 3986 unreserved characters stay; every other byte is %XX (a query value the router sends on).
std::string PercentEncode(std::string_view text);

// Whether a node's refusal means "not here, try another node": it is out of CPU, space or service
// (503, 507, a 409 insufficient_resources or busy), never a refusal of the request itself (a taken
// name, a bad body).
bool IsCapacityRefusal(const forkd::HttpResponse& reply);

// Adds "node": `node` to every instance and pool a forkd reply carries: an instance, a pool,
// {"instances"}, {"forks": [{"instance"}]}, {"instance"}, {"pools"}.
void MarkNode(nlohmann::json& reply, const std::string& node);

}  // namespace fe::engine::router
