// forkd's HTTP layer: the /v1 routes of the API contract over an fe::engine::Engine.
//
// Routing is ours (engine/forkd/router.h): httplib hands every request of every method to one
// dispatcher, which matches the route table segment by segment. That keeps one table for serving,
// for metrics labels and for the OpenAPI coverage test, and keeps std::regex out of our code.
//
// Per request: httplib reads the body (refusing more than kMaxBodyBytes with 413 before any handler
// runs), the dispatcher parses it strictly (request_parsing.h), calls the engine, and maps a failed
// Status to its HTTP code with a JSON {"code","message"} body (http_errors.h). Every response, also
// the ones httplib makes itself (413, unknown method), is logged as one line and counted in the
// metrics.
//
// Threads: the engine is thread-safe; an ApiServer may serve several httplib servers (the Unix
// socket and the TCP listener) at once.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.h"
#include "engine/forkd/metrics.h"
#include "engine/pools/pool.h"

namespace httplib {
class Server;
}

namespace fe::engine::forkd {

inline constexpr size_t kMaxBodyBytes = 64 * 1024;
// Worker threads per listener: a request holds its thread while the engine forks, and 50 concurrent
// fork requests must all be served without queueing behind each other.
inline constexpr size_t kWorkerThreads = 64;
// Requests served on one keep-alive connection before the server closes it.
inline constexpr size_t kKeepAliveMaxRequests = 10'000;

struct ServedRoute {
  std::string method;   // "GET", "POST", "DELETE"
  std::string pattern;  // "/v1/instances/{id}/fork"
};

// Every (method, pattern) the server serves.
std::vector<ServedRoute> ServedRoutes();

// What a handler answers.
struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::string instance;            // the instance the request named (for the log)
  std::vector<std::string> forks;  // ids of forks made (for the log)
  std::string error;               // message of a failed request (for the log)
};

class ApiServer {
 public:
  // `pools` may be null: the pool routes then answer 503 (forkd always passes one; unit tests of the
  // HTTP layer need not).
  ApiServer(engine::Engine& engine, Metrics& metrics, engine::pools::PoolManager* pools = nullptr)
      : engine_(engine), metrics_(metrics), pools_(pools) {}

  // Installs routes, limits, timeouts, the worker pool, error handling and request logging on
  // `server`. A non-empty `token` makes every request need "Authorization: Bearer <token>" (401
  // otherwise), checked before the body is read.
  void Install(httplib::Server& server, const std::string& token);

  // Serves one request (no HTTP involved): the route's reply, or 404 for an unknown route.
  // `route` receives the matched pattern, or "unmatched".
  Reply Dispatch(std::string_view method, std::string_view path, std::string_view body, std::string* route);

 private:
  using Params = std::vector<std::string>;
  Reply Healthz(const Params& params, std::string_view body);
  Reply ListInstances(const Params& params, std::string_view body);
  Reply CreateInstance(const Params& params, std::string_view body);
  Reply GetInstance(const Params& params, std::string_view body);
  Reply DeleteInstance(const Params& params, std::string_view body);
  Reply StartInstance(const Params& params, std::string_view body);
  Reply StopInstance(const Params& params, std::string_view body);
  Reply StandbyInstance(const Params& params, std::string_view body);
  Reply RestoreInstance(const Params& params, std::string_view body);
  Reply ForkInstance(const Params& params, std::string_view body);
  Reply StorageInfo(const Params& params, std::string_view body);
  Reply MetricsText(const Params& params, std::string_view body);
  // pool_handlers.cc
  Reply ListPools(const Params& params, std::string_view body);
  Reply CreatePool(const Params& params, std::string_view body);
  Reply GetPool(const Params& params, std::string_view body);
  Reply DeletePool(const Params& params, std::string_view body);
  Reply AcquireFromPool(const Params& params, std::string_view body);

  struct Route {
    std::string method;
    std::string pattern;
    Reply (ApiServer::*handler)(const Params&, std::string_view);
  };
  static const std::vector<Route>& Routes();
  friend std::vector<ServedRoute> ServedRoutes();

  engine::Engine& engine_;
  Metrics& metrics_;
  engine::pools::PoolManager* pools_;
};

}  // namespace fe::engine::forkd
