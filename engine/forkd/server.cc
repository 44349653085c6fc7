#include "engine/forkd/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "engine/forkd/http_errors.h"
#include "engine/forkd/replies.h"
#include "engine/forkd/request_parsing.h"
#include "engine/forkd/request_log.h"
#include "engine/forkd/router.h"

namespace fe::engine::forkd {
namespace {

using Names = std::optional<std::vector<std::string>>;

Names CreatedName(const std::vector<std::string>&, std::string_view body) {
  Result<engine::CreateRequest> request = ParseCreateRequest(body);
  if (!request.ok()) return std::nullopt;
  return std::vector<std::string>{request->name};
}

Names ForkNames(const std::vector<std::string>&, std::string_view body) {
  Result<engine::ForkRequest> request = ParseForkRequest(body);
  if (!request.ok()) return std::nullopt;
  return engine::FanOutNames(*request);
}

Names AcquiredName(const std::vector<std::string>&, std::string_view body) {
  Result<engine::pools::AcquireRequest> request = ParseAcquireRequest(body);
  if (!request.ok()) return std::nullopt;
  if (request->name.empty()) return std::vector<std::string>{};  // the member keeps its generated name
  return std::vector<std::string>{request->name};
}

}  // namespace

const std::vector<ApiServer::Route>& ApiServer::Routes() {
  static const std::vector<Route> kRoutes{
      {"GET", "/v1/healthz", &ApiServer::Healthz},
      {"GET",
       "/v1/instances",
       &ApiServer::ListInstances,
       false,
       nullptr,
       {"label", "state", "parent", "ancestor", "limit", "page_token"}},
      {"POST", "/v1/instances", &ApiServer::CreateInstance, /*body_required=*/true, CreatedName},
      {"GET", "/v1/instances/{id}", &ApiServer::GetInstance, false, nullptr, {"wait_for", "timeout_ms"}},
      {"GET", "/v1/instances/{id}/usage", &ApiServer::InstanceUsage},
      {"DELETE", "/v1/instances/{id}", &ApiServer::DeleteInstance},
      {"PATCH", "/v1/instances/{id}", &ApiServer::UpdateInstance, /*body_required=*/true},
      {"POST", "/v1/instances/{id}/start", &ApiServer::StartInstance},
      {"POST", "/v1/instances/{id}/stop", &ApiServer::StopInstance},
      {"POST", "/v1/instances/{id}/standby", &ApiServer::StandbyInstance},
      {"POST", "/v1/instances/{id}/restore", &ApiServer::RestoreInstance},
      {"POST", "/v1/instances/{id}/fork", &ApiServer::ForkInstance, /*body_required=*/true, ForkNames},
      {"POST", "/v1/instances/{id}/snapshots", &ApiServer::TakeSnapshot, /*body_required=*/true},
      {"GET", "/v1/snapshots", &ApiServer::ListSnapshots, false, nullptr, {"label", "instance", "limit", "page_token"}},
      {"GET", "/v1/snapshots/{id}", &ApiServer::GetSnapshot},
      {"GET", "/v1/snapshots/{id}/usage", &ApiServer::SnapshotUsage},
      {"DELETE", "/v1/snapshots/{id}", &ApiServer::DeleteSnapshot},
      {"POST", "/v1/snapshots/{id}/fork", &ApiServer::ForkSnapshot, /*body_required=*/true, ForkNames},
      {"GET", "/v1/instances/{id}/files", &ApiServer::TemplateFiles},
      {"GET",
       "/v1/instances/{id}/files/content",
       &ApiServer::TemplateFileContent,
       false,
       nullptr,
       {"path", "offset", "length"}},
      {"POST", "/v1/uploads", &ApiServer::CreateUpload, /*body_required=*/true, nullptr, {}, kMaxUploadRequestBytes},
      {"GET", "/v1/uploads/{id}", &ApiServer::GetUpload},
      {"PUT",
       "/v1/uploads/{id}/chunk",
       &ApiServer::PutUploadChunk,
       /*body_required=*/true,
       nullptr,
       {"path", "offset"},
       snapshot::kMaxChunkBytes},
      {"DELETE", "/v1/uploads/{id}", &ApiServer::DeleteUpload},
      {"GET", "/v1/storage", &ApiServer::StorageInfo},
      {"GET", "/v1/nodes", &ApiServer::ListNodes},
      {"GET", "/v1/metrics", &ApiServer::MetricsText},
      {"GET", "/v1/events", &ApiServer::Events, false, nullptr, {"since"}},
      {"GET", "/v1/pools", &ApiServer::ListPools},
      {"POST", "/v1/pools", &ApiServer::CreatePool, /*body_required=*/true},
      {"GET", "/v1/pools/{name}", &ApiServer::GetPool},
      {"DELETE", "/v1/pools/{name}", &ApiServer::DeletePool},
      {"POST", "/v1/pools/{name}/acquire", &ApiServer::AcquireFromPool, /*body_required=*/false, AcquiredName},
  };
  return kRoutes;
}

std::vector<ServedRoute> ServedRoutes() {
  std::vector<ServedRoute> routes;
  for (const ApiServer::Route& route : ApiServer::Routes()) routes.push_back({route.method, route.pattern});
  return routes;
}

// The one query parameter a route may be given more than once: a listing's label selectors, each a
// term that must match (GET /v1/instances?label=a=1&label=b).
constexpr std::string_view kRepeatableQueryParameter = "label";

Reply ApiServer::Dispatch(std::string_view method, std::string_view path, std::string_view body, const Query& query) {
  std::optional<RouteMatch> match = MatchRoute(Routes(), method, path);
  if (!match) return UnroutedReply(method, path, AllowedMethods(Routes(), path));
  const Route& served = Routes()[match->route];
  std::set<std::string_view> seen;
  for (const auto& [name, value] : query) {
    std::string problem;
    if (std::find(served.query.begin(), served.query.end(), name) == served.query.end()) {
      problem = "query parameter '" + name + "' is not known on " + served.pattern;
    } else if (name != kRepeatableQueryParameter && !seen.insert(name).second) {
      problem = "query parameter '" + name + "' is given twice";
    }
    if (!problem.empty()) {
      Reply reply = ErrorReply(Status::InvalidArgument(problem));
      reply.route = served.pattern;
      return reply;
    }
  }
  Reply reply = (this->*served.handler)(match->params, query, body);
  reply.route = served.pattern;
  return reply;
}

Reply ApiServer::Serve(const HttpRequest& request) {
  if (request.idempotency_key.empty() || requests_ == nullptr) {
    return Dispatch(request.method, request.path, request.body, request.query);
  }
  std::optional<RouteMatch> match = MatchRoute(Routes(), request.method, request.path);
  const Route* route = match ? &Routes()[match->route] : nullptr;
  // A key on a route that makes nothing, or on a body that does not parse (its answer is the same
  // every time), needs no record.
  Names names = route && route->names ? route->names(match->params, request.body) : std::nullopt;
  if (!names) return Dispatch(request.method, request.path, request.body, request.query);
  const IdempotencyStore::Request fingerprint{request.method, request.path, request.body};
  Result<IdempotencyStore::Claim> claim = requests_->Begin(request.idempotency_key, fingerprint, *names);
  if (!claim.ok()) {
    Reply reply = ErrorReply(claim.status());
    reply.route = route->pattern;
    return reply;
  }
  if (claim->replay) {
    Reply reply;
    reply.status = claim->reply.status;
    reply.body = claim->reply.body;
    reply.route = route->pattern;
    reply.headers.emplace_back("Idempotent-Replayed", "true");
    return reply;
  }
  Reply reply = Dispatch(request.method, request.path, request.body, request.query);
  if (Status recorded = requests_->Finish(request.idempotency_key, {reply.status, reply.body}); !recorded.ok()) {
    // The work is done and answered; only a retry of it would run again.
    spdlog::warn("{}", recorded.ToString());
  }
  return reply;
}

bool ApiServer::RequiresBody(std::string_view method, std::string_view path) const {
  std::optional<RouteMatch> match = MatchRoute(Routes(), method, path);
  return match && Routes()[match->route].body_required;
}

HttpHandlers ApiServer::Handlers() {
  HttpHandlers handlers;
  handlers.handle = [this](const HttpRequest& request) { return Serve(request); };
  handlers.requires_body = [this](std::string_view method, std::string_view path) {
    return RequiresBody(method, path);
  };
  handlers.route_body_limit = [](std::string_view method, std::string_view path) -> size_t {
    std::optional<RouteMatch> match = MatchRoute(Routes(), method, path);
    return match ? Routes()[match->route].max_body : 0;
  };
  handlers.largest_route_body_bytes = kMaxUploadRequestBytes;
  handlers.completed = [this](const HttpRequest& request, const HttpResponse& response, double seconds) {
    Completed(request, response, seconds);
  };
  handlers.error_body = [](int status, std::string_view message) {
    return ErrorBody(ErrorCodeForHttpStatus(status), message);
  };
  return handlers;
}

void ApiServer::Completed(const HttpRequest& request, const HttpResponse& response, double seconds) {
  metrics_.RecordRequest(request.method, response.route, response.status, seconds);
  RequestRecord record{.method = request.method,
                       .path = request.path,
                       .status = response.status,
                       .duration_ms = seconds * 1e3,
                       .instance = response.instance,
                       .forks = response.forks,
                       .error = response.error};
  if (response.status >= 500) {
    spdlog::error("{}", RequestLogLine(record));
  } else {
    spdlog::info("{}", RequestLogLine(record));
  }
}

}  // namespace fe::engine::forkd
