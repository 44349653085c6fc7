#include "engine/forkd/server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <exception>

#include "engine/forkd/http_errors.h"
#include "engine/forkd/request_log.h"
#include "engine/forkd/router.h"

namespace fe::engine::forkd {
namespace {

using Clock = std::chrono::steady_clock;

// What the logger needs about the request being served on this thread. httplib serves a request
// start to finish on one worker thread (pre-routing handler, handler, then the logger), and its
// const Request has no room for our data, so the handlers leave it here.
struct RequestContext {
  bool active = false;
  Clock::time_point start;
  std::string route = "unmatched";
  Reply reply;  // body not kept: only the log fields
};
thread_local RequestContext current_request;

bool SameToken(std::string_view given, const std::string& expected) {
  // Constant time in the token's content, so the comparison does not leak a prefix.
  unsigned char difference = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    difference |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
  }
  return difference == 0;
}

}  // namespace

const std::vector<ApiServer::Route>& ApiServer::Routes() {
  static const std::vector<Route> kRoutes{
      {"GET", "/v1/healthz", &ApiServer::Healthz},
      {"GET", "/v1/instances", &ApiServer::ListInstances},
      {"POST", "/v1/instances", &ApiServer::CreateInstance},
      {"GET", "/v1/instances/{id}", &ApiServer::GetInstance},
      {"DELETE", "/v1/instances/{id}", &ApiServer::DeleteInstance},
      {"POST", "/v1/instances/{id}/start", &ApiServer::StartInstance},
      {"POST", "/v1/instances/{id}/stop", &ApiServer::StopInstance},
      {"POST", "/v1/instances/{id}/standby", &ApiServer::StandbyInstance},
      {"POST", "/v1/instances/{id}/restore", &ApiServer::RestoreInstance},
      {"POST", "/v1/instances/{id}/fork", &ApiServer::ForkInstance},
      {"GET", "/v1/storage", &ApiServer::StorageInfo},
      {"GET", "/v1/metrics", &ApiServer::MetricsText},
      {"GET", "/v1/pools", &ApiServer::ListPools},
      {"POST", "/v1/pools", &ApiServer::CreatePool},
      {"GET", "/v1/pools/{name}", &ApiServer::GetPool},
      {"DELETE", "/v1/pools/{name}", &ApiServer::DeletePool},
      {"POST", "/v1/pools/{name}/acquire", &ApiServer::AcquireFromPool},
  };
  return kRoutes;
}

std::vector<ServedRoute> ServedRoutes() {
  std::vector<ServedRoute> routes;
  for (const ApiServer::Route& route : ApiServer::Routes()) routes.push_back({route.method, route.pattern});
  return routes;
}

Reply ApiServer::Dispatch(std::string_view method, std::string_view path, std::string_view body, std::string* route) {
  std::optional<RouteMatch> match = MatchRoute(Routes(), method, path);
  if (!match) {
    *route = "unmatched";
    Reply reply;
    reply.status = 404;
    reply.error = "no route " + std::string(method) + " " + std::string(path);
    reply.body = ErrorBody("not_found", reply.error);
    return reply;
  }
  const Route& served = Routes()[match->route];
  *route = served.pattern;
  return (this->*served.handler)(match->params, body);
}

void ApiServer::Install(httplib::Server& server, const std::string& token) {
  server.set_payload_max_length(kMaxBodyBytes);
  server.set_read_timeout(std::chrono::seconds(30));
  server.set_write_timeout(std::chrono::seconds(30));
  // A client acquiring from a pool in a loop keeps its connection (httplib's default closes it after
  // 5 requests, and a reconnect costs more than an acquire).
  server.set_keep_alive_max_count(kKeepAliveMaxRequests);
  server.new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };

  server.set_pre_routing_handler([token](const httplib::Request& request, httplib::Response& response) {
    current_request = RequestContext{.active = true, .start = Clock::now(), .route = "unmatched", .reply = {}};
    if (token.empty()) return httplib::Server::HandlerResponse::Unhandled;
    const std::string& header = request.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.size() > kBearer.size() && header.compare(0, kBearer.size(), kBearer) == 0 &&
        SameToken(std::string_view(header).substr(kBearer.size()), token)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    response.status = 401;
    response.set_header("WWW-Authenticate", "Bearer");
    response.set_content(ErrorBody("unauthenticated", "a bearer token is required on this listener"),
                         "application/json");
    current_request.reply.error = "missing or wrong bearer token";
    return httplib::Server::HandlerResponse::Handled;
  });

  auto serve = [this](const httplib::Request& request, httplib::Response& response) {
    Reply reply = Dispatch(request.method, request.path, request.body, &current_request.route);
    response.status = reply.status;
    if (!reply.body.empty()) response.set_content(reply.body, reply.content_type);
    reply.body.clear();
    current_request.reply = std::move(reply);
  };
  server.Get(".*", serve);
  server.Post(".*", serve);
  server.Put(".*", serve);
  server.Patch(".*", serve);
  server.Delete(".*", serve);
  server.Options(".*", serve);

  // Responses httplib makes itself (413, a request it cannot parse) get the same JSON error body.
  server.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& response) {
        if (!response.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string_view code = ErrorCodeForHttpStatus(response.status);
        std::string message = response.status == 413
                                  ? "the request body exceeds " + std::to_string(kMaxBodyBytes) + " bytes"
                                  : "HTTP " + std::to_string(response.status);
        response.set_content(ErrorBody(code, message), "application/json");
        current_request.reply.error = message;
        return httplib::Server::HandlerResponse::Handled;
      }));

  server.set_exception_handler([](const httplib::Request&, httplib::Response& response, std::exception_ptr error) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    response.status = 500;
    response.set_content(ErrorBody("internal", "internal error: " + what), "application/json");
    current_request.reply.error = what;
  });

  server.set_logger([this](const httplib::Request& request, const httplib::Response& response) {
    RequestContext context = std::move(current_request);
    current_request = RequestContext{};
    double seconds = context.active ? std::chrono::duration<double>(Clock::now() - context.start).count() : 0.0;
    metrics_.RecordRequest(request.method, context.route, response.status, seconds);
    RequestRecord record{.method = request.method,
                         .path = request.path,
                         .status = response.status,
                         .duration_ms = seconds * 1e3,
                         .instance = context.reply.instance,
                         .forks = std::move(context.reply.forks),
                         .error = context.reply.error};
    if (response.status >= 500) {
      spdlog::error("{}", RequestLogLine(record));
    } else {
      spdlog::info("{}", RequestLogLine(record));
    }
  });
}

}  // namespace fe::engine::forkd
