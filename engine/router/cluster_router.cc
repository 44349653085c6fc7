#include "engine/router/cluster_router.h"

#include <algorithm>
#include <cctype>
#include <future>
#include <map>
#include <set>

#include "base/log.h"
#include "engine/cluster/placement.h"
#include "engine/forkd/http_errors.h"
#include "engine/forkd/replies.h"
#include "engine/forkd/request_log.h"
#include "engine/forkd/request_parsing.h"
#include "engine/forkd/router.h"
#include "engine/forkd/server.h"
#include "engine/forkd/socket_setup.h"

namespace fe::engine::router {
namespace {

using Json = nlohmann::json;
using forkd::ErrorReply;
using forkd::JsonReply;

std::string Target(const forkd::HttpRequest& request) {
  std::string target = request.path;
  for (size_t i = 0; i < request.query.size(); ++i) {
    target += i == 0 ? '?' : '&';
    target += PercentEncode(request.query[i].first);
    if (!request.query[i].second.empty()) {
      target += '=';
      target += PercentEncode(request.query[i].second);
    }
  }
  return target;
}

bool IsChange(const std::string& method) { return method == "POST" || method == "DELETE" || method == "PUT"; }

}  // namespace

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string encoded;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      encoded += static_cast<char>(c);
    } else {
      encoded += '%';
      encoded += kHex[c >> 4];
      encoded += kHex[c & 15];
    }
  }
  return encoded;
}

bool IsCapacityRefusal(const forkd::HttpResponse& reply) {
  if (reply.status == 503 || reply.status == 507) return true;
  if (reply.status != 409) return false;
  const Json body = Json::parse(reply.body, nullptr, false);
  const std::string code = body.is_object() ? body.value("code", std::string()) : std::string();
  return code == "insufficient_resources" || code == "busy";
}

void MarkNode(Json& reply, const std::string& node) {
  if (!reply.is_object()) return;
  if (reply.contains("id") && reply.contains("state")) reply["node"] = node;               // an instance
  if (reply.contains("template") && reply.contains("member_state")) reply["node"] = node;  // a pool
  for (const char* list : {"instances", "pools"}) {
    if (!reply.contains(list) || !reply[list].is_array()) continue;
    for (Json& item : reply[list]) {
      if (item.is_object()) item["node"] = node;
    }
  }
  if (reply.contains("forks") && reply["forks"].is_array()) {
    for (Json& fork : reply["forks"]) {
      if (fork.is_object() && fork.contains("instance") && fork["instance"].is_object())
        fork["instance"]["node"] = node;
    }
  }
  if (reply.contains("instance") && reply["instance"].is_object()) reply["instance"]["node"] = node;
}

struct ClusterRouter::Route {
  std::string method;
  std::string pattern;
  Reply (ClusterRouter::*handler)(const Request&, const Params&);
};

const std::vector<ClusterRouter::Route>& ClusterRouter::Table() {
  static const std::vector<Route> kRoutes{
      {"GET", "/v1/healthz", &ClusterRouter::Health},
      {"GET", "/v1/instances", &ClusterRouter::ListInstances},
      {"POST", "/v1/instances", &ClusterRouter::CreateInstance},
      {"GET", "/v1/instances/{id}", &ClusterRouter::ToOwner},
      {"GET", "/v1/instances/{id}/usage", &ClusterRouter::ToOwner},
      {"DELETE", "/v1/instances/{id}", &ClusterRouter::ToOwner},
      {"PATCH", "/v1/instances/{id}", &ClusterRouter::ToOwner},
      {"POST", "/v1/instances/{id}/start", &ClusterRouter::ToOwner},
      {"POST", "/v1/instances/{id}/stop", &ClusterRouter::ToOwner},
      {"POST", "/v1/instances/{id}/standby", &ClusterRouter::ToOwner},
      {"POST", "/v1/instances/{id}/restore", &ClusterRouter::ToOwner},
      {"POST", "/v1/instances/{id}/fork", &ClusterRouter::ForkInstance},
      {"POST", "/v1/instances/{id}/snapshots", &ClusterRouter::ToOwner},
      {"GET", "/v1/snapshots", &ClusterRouter::ListSnapshots},
      {"GET", "/v1/snapshots/{id}", &ClusterRouter::ToSnapshotOwner},
      {"GET", "/v1/snapshots/{id}/usage", &ClusterRouter::ToSnapshotOwner},
      {"DELETE", "/v1/snapshots/{id}", &ClusterRouter::ToSnapshotOwner},
      {"POST", "/v1/snapshots/{id}/fork", &ClusterRouter::ToSnapshotOwner},
      {"GET", "/v1/instances/{id}/files", &ClusterRouter::ToOwner},
      {"GET", "/v1/instances/{id}/files/content", &ClusterRouter::ToOwner},
      {"POST", "/v1/uploads", &ClusterRouter::NodeLocal},
      {"GET", "/v1/uploads/{id}", &ClusterRouter::NodeLocal},
      {"PUT", "/v1/uploads/{id}/chunk", &ClusterRouter::NodeLocal},
      {"DELETE", "/v1/uploads/{id}", &ClusterRouter::NodeLocal},
      {"GET", "/v1/storage", &ClusterRouter::NodeLocal},
      {"GET", "/v1/nodes", &ClusterRouter::Nodes},
      {"GET", "/v1/metrics", &ClusterRouter::NodeLocal},
      {"GET", "/v1/events", &ClusterRouter::NodeLocal},
      {"GET", "/v1/pools", &ClusterRouter::ListPools},
      {"POST", "/v1/pools", &ClusterRouter::CreatePool},
      {"GET", "/v1/pools/{name}", &ClusterRouter::ToPoolNode},
      {"DELETE", "/v1/pools/{name}", &ClusterRouter::ToPoolNode},
      {"POST", "/v1/pools/{name}/acquire", &ClusterRouter::Acquire},
  };
  return kRoutes;
}

std::vector<std::pair<std::string, std::string>> ClusterRouter::Routes() {
  std::vector<std::pair<std::string, std::string>> routes;
  for (const Route& route : Table()) routes.emplace_back(route.method, route.pattern);
  return routes;
}

ClusterRouter::ClusterRouter(cluster::ClusterCache& cache, std::shared_ptr<cluster::EtcdClient> etcd,
                             cluster::ClusterKeys keys, RouterOptions options)
    : cache_(cache),
      etcd_(std::move(etcd)),
      keys_(std::move(keys)),
      options_(std::move(options)),
      random_(std::random_device{}()) {}

forkd::HttpHandlers ClusterRouter::Handlers() {
  forkd::HttpHandlers handlers;
  handlers.handle = [this](const Request& request) { return Serve(request); };
  handlers.requires_body = [](std::string_view method, std::string_view path) {
    // The bodies forkd cannot do without; the node says what else is wrong with a request.
    return method == "POST" &&
           (path == "/v1/instances" || path == "/v1/pools" || path.ends_with("/fork") || path.ends_with("/snapshots"));
  };
  handlers.completed = [](const Request& request, const Reply& reply, double seconds) {
    const std::string line = forkd::RequestLogLine(forkd::RequestRecord{.method = request.method,
                                                                        .path = request.path,
                                                                        .status = reply.status,
                                                                        .duration_ms = seconds * 1e3,
                                                                        .instance = reply.instance,
                                                                        .forks = {},
                                                                        .error = reply.error});
    Log(reply.status >= 500 ? LogLevel::kError : LogLevel::kInfo, line);
  };
  handlers.error_body = [](int status, std::string_view message) {
    return forkd::ErrorBody(forkd::ErrorCodeForHttpStatus(status), message);
  };
  return handlers;
}

forkd::HttpResponse ClusterRouter::Serve(const Request& request) {
  std::optional<forkd::RouteMatch> match = forkd::MatchRoute(Table(), request.method, request.path);
  if (!match) return forkd::UnroutedReply(request.method, request.path, forkd::AllowedMethods(Table(), request.path));
  const Route& route = Table()[match->route];
  if (IsChange(request.method)) {
    if (Status quorum = CheckQuorum(); !quorum.ok()) {
      Reply reply = ErrorReply(quorum);
      reply.route = route.pattern;
      return reply;
    }
  }
  Reply reply = (this->*route.handler)(request, match->params);
  reply.route = route.pattern;
  if (!match->params.empty()) reply.instance = match->params.front();
  return reply;
}

Status ClusterRouter::CheckQuorum() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (std::chrono::steady_clock::now() < quorum_ok_until_) return Status::Ok();
  }
  // A linearizable read goes through the raft leader: it fails when a majority is gone.
  Result<std::optional<cluster::KeyValue>> read = etcd_->Get(keys_.Nodes());
  if (!read.ok()) {
    return Status::Unavailable("etcd does not answer with a quorum (" + read.status().message() +
                               "): the router refuses changes; each node still serves its local API");
  }
  std::lock_guard<std::mutex> lock(mutex_);
  quorum_ok_until_ = std::chrono::steady_clock::now() + options_.quorum_check_ttl;
  return Status::Ok();
}

Result<forkd::HttpResponse> ClusterRouter::Forward(const cluster::NodeInfo& node, const Request& request,
                                                   const std::string& body) const {
  Result<http::HttpClient> client = NodeClient(node);
  if (!client.ok()) return client.status();
  std::vector<std::pair<std::string, std::string>> headers;
  if (!options_.node_token.empty()) headers.emplace_back("Authorization", "Bearer " + options_.node_token);
  if (!request.idempotency_key.empty()) headers.emplace_back("Idempotency-Key", request.idempotency_key);
  Result<http::Response> answer = client->Send(request.method, Target(request), body, headers);
  if (!answer.ok()) return Status::Unavailable(answer.status().message());
  Reply reply;
  reply.status = answer->status;
  reply.body = std::move(answer->body);
  if (!answer->content_type.empty()) reply.content_type = answer->content_type;
  if (reply.status == 204) reply.content_type.clear();
  if (reply.status / 100 == 2 && !reply.body.empty()) {
    Json json = Json::parse(reply.body, nullptr, false);
    if (json.is_object()) {
      MarkNode(json, node.name);
      reply.body = forkd::DumpJson(json);
    }
  } else if (reply.status / 100 != 2) {
    reply.error = reply.body;
  }
  return reply;
}

Result<http::HttpClient> ClusterRouter::NodeClient(const cluster::NodeInfo& node) const {
  std::lock_guard<std::mutex> lock(clients_mutex_);
  auto it = clients_.find(node.name);
  if (it != clients_.end() && it->second.first == node.api) return it->second.second;
  Result<std::pair<std::string, int>> address = forkd::ParseHostPort("the API address of node " + node.name, node.api);
  if (!address.ok()) return Status::Unavailable(address.status().message());
  http::HttpClient client =
      http::HttpClient::Tcp(address->first, address->second, "node " + node.name, options_.node_timeout);
  // Below forkd's idle timeout for TCP clients (3 s), so a kept connection is still open.
  client.ReuseConnections(std::chrono::milliseconds(1000));
  clients_.insert_or_assign(node.name, std::make_pair(node.api, client));
  return client;
}

forkd::HttpResponse ClusterRouter::ForwardToFirstTaker(const std::vector<std::string>& ranked, const Request& request,
                                                       const std::string& body) {
  const std::shared_ptr<const cluster::ClusterIndex> index = cache_.Snapshot();
  std::string refusals;
  std::optional<Reply> last;
  for (const std::string& name : ranked) {
    const cluster::NodeInfo* node = index->Node(name);
    if (node == nullptr) continue;
    Result<Reply> reply = Forward(*node, request, body);
    if (!reply.ok()) {
      refusals += (refusals.empty() ? "" : "; ") + reply.status().message();
      continue;
    }
    if (!IsCapacityRefusal(*reply)) return std::move(*reply);
    refusals += (refusals.empty() ? "" : "; ") + name + " answered " + std::to_string(reply->status);
    last = std::move(*reply);
  }
  if (last) return std::move(*last);  // every node refused for capacity: the last refusal says why
  return ErrorReply(Status::Unavailable("no node took the request: " + refusals));
}

std::vector<std::pair<std::string, Result<Json>>> ClusterRouter::AskEveryNode(const std::string& path) const {
  const std::shared_ptr<const cluster::ClusterIndex> index = cache_.Snapshot();
  std::vector<std::pair<std::string, std::future<Result<Json>>>> asked;
  for (const auto& [name, node] : index->nodes) {
    asked.emplace_back(name, std::async(std::launch::async, [this, node = node, path]() -> Result<Json> {
                         Request request;
                         request.method = "GET";
                         request.path = path;
                         FE_ASSIGN_OR_RETURN(Reply reply, Forward(node, request, ""));
                         if (reply.status != 200) {
                           return Status::Unavailable("node " + node.name + " answered " +
                                                      std::to_string(reply.status) + ": " + reply.body);
                         }
                         Json json = Json::parse(reply.body, nullptr, false);
                         if (!json.is_object()) return Status::InvalidContent("node " + node.name + ": not JSON");
                         return json;
                       }));
  }
  std::vector<std::pair<std::string, Result<Json>>> answers;
  for (auto& [name, future] : asked) answers.emplace_back(name, future.get());
  return answers;
}

forkd::HttpResponse ClusterRouter::Health(const Request&, const Params&) {
  const std::shared_ptr<const cluster::ClusterIndex> index = cache_.Snapshot();
  return JsonReply(200, Json{{"status", cache_.Synced() && !index->nodes.empty() ? "ok" : "degraded"},
                             {"instances", index->instances.size()},
                             {"quarantined", Json::array()}});
}

forkd::HttpResponse ClusterRouter::Nodes(const Request&, const Params&) {
  if (!cache_.Synced()) return ErrorReply(Status::Unavailable("the router has not read the cluster's index from etcd"));
  return JsonReply(200, Json{{"nodes", cluster::NodesView(*cache_.Snapshot())}});
}

ClusterRouter::MergedPage ClusterRouter::MergePages(const Request& request, const std::string& collection,
                                                    const char* time_field, size_t limit) const {
  // Each node answers its first page of the filter after the cursor, in the listing's order; the
  // router's page is the first `limit` of their union in that order (engine/instance_query.h).
  std::string path = "/v1/" + collection;
  for (const auto& [name, value] : request.query) {
    path += (path.find('?') == std::string::npos ? "?" : "&") + PercentEncode(name) + "=" + PercentEncode(value);
  }
  MergedPage page;
  std::vector<std::pair<engine::PageCursor, Json>> listed;
  for (auto& [name, answer] : AskEveryNode(path)) {
    if (!answer.ok()) continue;
    page.answered.insert(name);
    page.more = page.more || answer->contains("next_page_token");
    for (Json& item : (*answer)[collection]) {
      engine::PageCursor cursor{item.value(time_field, ""), item.value("id", "")};
      listed.emplace_back(std::move(cursor), std::move(item));
    }
  }
  std::sort(listed.begin(), listed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [cursor, item] : listed) {
    if (limit != 0 && page.items.size() == limit) {
      page.more = true;
      break;
    }
    page.last = cursor;
    page.items.push_back(std::move(item));
  }
  return page;
}

forkd::HttpResponse ClusterRouter::ListInstances(const Request& request, const Params&) {
  Result<engine::InstanceQuery> query = forkd::ParseInstanceQuery(request.query);
  if (!query.ok()) return ErrorReply(query.status());
  const std::shared_ptr<const cluster::ClusterIndex> index = cache_.Snapshot();
  MergedPage page = MergePages(request, "instances", "created_at", query->limit);
  Json unreachable = Json::array();
  for (const auto& [id, owner] : index->instances) {
    if (page.answered.count(owner.node) == 0)
      unreachable.push_back(Json{{"id", id}, {"name", owner.name}, {"node", owner.node}});
  }
  Json reply{{"instances", std::move(page.items)}, {"unreachable", std::move(unreachable)}};
  if (page.more && page.last) reply["next_page_token"] = engine::EncodePageToken(*page.last);
  return JsonReply(200, std::move(reply));
}

forkd::HttpResponse ClusterRouter::ListSnapshots(const Request& request, const Params&) {
  Result<engine::InstanceQuery> query = forkd::ParseSnapshotQuery(request.query);
  if (!query.ok()) return ErrorReply(query.status());
  MergedPage page = MergePages(request, "snapshots", "taken_at", query->limit);
  Json reply{{"snapshots", std::move(page.items)}};
  if (page.more && page.last) reply["next_page_token"] = engine::EncodePageToken(*page.last);
  return JsonReply(200, std::move(reply));
}

forkd::HttpResponse ClusterRouter::ToSnapshotOwner(const Request& request, const Params& params) {
  // Snapshots are not in the index: the live node that has it says so.
  const std::string& id = params.front();
  const std::shared_ptr<const cluster::ClusterIndex> index = cache_.Snapshot();
  for (auto& [name, answer] : AskEveryNode("/v1/snapshots/" + PercentEncode(id))) {
    if (!answer.ok()) continue;
    const cluster::NodeInfo* node = index->Node(name);
    if (node == nullptr) continue;
    Result<Reply> reply = Forward(*node, request, request.body);
    return reply.ok() ? std::move(*reply) : ErrorReply(reply.status());
  }
  return ErrorReply(Status::NotFound("no live node holds snapshot " + id));
}

forkd::HttpResponse ClusterRouter::CreateInstance(const Request& request, const Params&) {
  Json body = Json::parse(request.body, nullptr, false);
  if (!body.is_object()) return ErrorReply(Status::InvalidArgument("create request: the body is not a JSON object"));
  const std::shared_ptr<const cluster::ClusterIndex> index = cache_.Snapshot();
  std::vector<std::string> ranked;
  if (body.contains("node")) {
    if (!body["node"].is_string())
      return ErrorReply(Status::InvalidArgument("create request: field 'node': not a string"));
    const std::string node = body["node"];
    if (index->Node(node) == nullptr) {
      return ErrorReply(Status::Unavailable("create request: field 'node': node '" + node + "' is not alive"));
    }
    ranked.push_back(node);
  } else {
    cluster::PlacementNeed need;
    need.hypervisor = body.value("hypervisor", std::string());
    need.vcpus = body.contains("vcpus") && body["vcpus"].is_number_integer() ? body["vcpus"].get<int>() : 1;
    Result<std::vector<std::string>> placed = [&] {
      std::lock_guard<std::mutex> lock(mutex_);
      return cluster::RankNodes(*index, need, random_, options_.best_of);
    }();
    if (!placed.ok()) return ErrorReply(placed.status());
    ranked = std::move(*placed);
  }
  return ForwardToFirstTaker(ranked, request, request.body);
}

std::string ClusterRouter::FindOwner(const std::string& id) const {
  const std::string owner = cache_.Snapshot()->OwnerOf(id);
  if (!owner.empty()) return owner;
  // The index lags a node's publishing by up to a round: ask the nodes themselves.
  for (auto& [name, answer] : AskEveryNode("/v1/instances/" + id)) {
    if (answer.ok()) return name;
  }
  return "";
}

forkd::HttpResponse ClusterRouter::ToOwner(const Request& request, const Params& params) {
  const std::string& id = params.front();
  const std::string owner = FindOwner(id);
  const std::shared_ptr<const cluster::ClusterIndex> index = cache_.Snapshot();
  if (owner.empty()) return ErrorReply(Status::NotFound("no node holds instance " + id));
  const cluster::NodeInfo* node = index->Node(owner);
  if (node == nullptr) {
    return ErrorReply(Status::Unavailable("instance " + id + " is on node " + owner +
                                          ", which is not alive: it is unreachable until the node is back"));
  }
  Result<Reply> reply = Forward(*node, request, request.body);
  return reply.ok() ? std::move(*reply) : ErrorReply(reply.status());
}

forkd::HttpResponse ClusterRouter::NodeLocal(const Request& request, const Params&) {
  return ErrorReply(Status(ErrorCode::kUnsupported, request.path +
                                                        " is one node's: ask that node's API (GET /v1/nodes lists "
                                                        "their addresses)"));
}

forkd::HttpResponse ClusterRouter::ListPools(const Request&, const Params&) {
  Json pools = Json::array();
  int64_t budget = 0, used = 0, memory_budget = 0, memory_used = 0;
  for (auto& [name, answer] : AskEveryNode("/v1/pools")) {
    if (!answer.ok()) continue;
    for (Json& pool : (*answer)["pools"]) pools.push_back(std::move(pool));
    budget += answer->value("cpu_budget_vcpus", int64_t{0});
    used += answer->value("cpu_used_vcpus", int64_t{0});
    memory_budget += answer->value("memory_budget_bytes", int64_t{0});
    memory_used += answer->value("memory_used_bytes", int64_t{0});
  }
  return JsonReply(200, Json{{"pools", std::move(pools)},
                             {"cpu_budget_vcpus", budget},
                             {"cpu_used_vcpus", used},
                             {"memory_budget_bytes", memory_budget},
                             {"memory_used_bytes", memory_used}});
}

forkd::HttpResponse ClusterRouter::CreatePool(const Request& request, const Params&) {
  // A pool lives beside its template.
  Json body = Json::parse(request.body, nullptr, false);
  const std::string template_id = body.is_object() && body.contains("template") && body["template"].is_string()
                                      ? body["template"].get<std::string>()
                                      : "";
  if (template_id.empty()) {
    return ErrorReply(Status::InvalidArgument("pool request: field 'template': a string is required"));
  }
  return ToOwner(request, {template_id});
}

forkd::HttpResponse ClusterRouter::ToPoolNode(const Request& request, const Params& params) {
  const std::shared_ptr<const cluster::ClusterIndex> index = cache_.Snapshot();
  for (const cluster::PoolInfo& pool : index->pools) {
    if (pool.name != params.front()) continue;
    Result<Reply> reply = Forward(*index->Node(pool.node), request, request.body);
    return reply.ok() ? std::move(*reply) : ErrorReply(reply.status());
  }
  return ErrorReply(Status::NotFound("no live node has pool '" + params.front() + "'"));
}

forkd::HttpResponse ClusterRouter::Acquire(const Request& request, const Params& params) {
  const std::shared_ptr<const cluster::ClusterIndex> index = cache_.Snapshot();
  std::vector<const cluster::PoolInfo*> holders;
  for (const cluster::PoolInfo& pool : index->pools) {
    if (pool.name == params.front()) holders.push_back(&pool);
  }
  if (holders.empty()) return ErrorReply(Status::NotFound("no live node has pool '" + params.front() + "'"));
  std::stable_sort(holders.begin(), holders.end(),
                   [](const cluster::PoolInfo* a, const cluster::PoolInfo* b) { return a->ready > b->ready; });
  std::vector<std::string> ranked;
  for (const cluster::PoolInfo* pool : holders) ranked.push_back(pool->node);
  return ForwardToFirstTaker(ranked, request, request.body);
}

}  // namespace fe::engine::router
