// forkd's API: the /v1 routes of the API contract over an fe::engine::Engine, served by the HTTP
// transport of engine/forkd/http_server.h.
//
// Routing is ours (engine/forkd/router.h): the transport hands every complete request to one
// dispatcher, which matches the route table segment by segment. That keeps one table for serving,
// for metrics labels, for which requests need a body (411 without one) and for the OpenAPI coverage
// test, and keeps std::regex out of our code. A path the table knows under other methods is 405 with
// an Allow header; any other is 404.
//
// Per request: the transport reads the body (refusing more than kMaxBodyBytes with 413 before any
// byte of it is read), the dispatcher parses it strictly (request_parsing.h), calls the engine, and
// maps a failed Status to its HTTP code with a JSON {"code","message"} body (http_errors.h). Every
// response, also the transport's own refusals, is logged as one line and counted in the metrics.
//
// Threads: the engine is thread-safe; one ApiServer serves every listener.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/cluster/cluster_view.h"
#include "engine/cluster/name_reservations.h"
#include "engine/engine.h"
#include "engine/forkd/http_server.h"
#include "engine/forkd/idempotency_store.h"
#include "engine/forkd/metrics.h"
#include "engine/pools/pool.h"
#include "engine/replication/upload_store.h"
#include "snapshot/guest_files.h"

namespace fe::engine::forkd {

inline constexpr size_t kMaxBodyBytes = 64 * 1024;
// Routes with bodies larger than JSON requests: an upload's description (a template's file list) and
// one chunk of its data.
inline constexpr size_t kMaxUploadRequestBytes = 16u << 20;
static_assert(snapshot::kMaxChunkBytes <= kMaxUploadRequestBytes);

struct ServedRoute {
  std::string method;   // "GET", "POST", "DELETE"
  std::string pattern;  // "/v1/instances/{id}/fork"
};

// Every (method, pattern) the server serves.
std::vector<ServedRoute> ServedRoutes();

// What a handler answers: the transport's response, with the fields the request log reads.
using Reply = HttpResponse;

class ApiServer {
 public:
  // A request's query parameters, decoded, in order (HttpRequest::query).
  using Query = std::vector<std::pair<std::string, std::string>>;

  // `pools` may be null: the pool routes then answer 503 (forkd always passes one; unit tests of the
  // HTTP layer need not).
  // `requests` may be null: Idempotency-Key headers are then ignored (forkd always passes one).
  ApiServer(engine::Engine& engine, Metrics& metrics, engine::pools::PoolManager* pools = nullptr,
            IdempotencyStore* requests = nullptr)
      : engine_(engine), metrics_(metrics), pools_(pools), requests_(requests) {}

  // As a cluster node: the names of created, forked and renamed instances are claimed cluster-wide
  // first (engine/cluster/name_reservations.h), and GET /v1/nodes shows the cluster. Set before
  // serving; unset: no cluster (GET /v1/nodes is 503).
  void SetCluster(cluster::NameReservations* names, const cluster::ClusterView* view) {
    names_ = names;
    cluster_ = view;
  }
  // Where uploads of other nodes' templates are staged; unset: the upload routes answer 503.
  void SetUploads(replication::UploadStore* uploads) { uploads_ = uploads; }

  // The transport's callbacks: Dispatch, the routes that need a body, the request log and metrics,
  // JSON error bodies.
  HttpHandlers Handlers();

  // Serves one request (no HTTP involved): the route's reply (its `route` the matched pattern), 405
  // with Allow for a path served under other methods only, or 404.
  Reply Dispatch(std::string_view method, std::string_view path, std::string_view body, const Query& query = {});
  // Dispatch, through the IdempotencyStore when the request carries a key on a route that makes
  // instances (engine/forkd/idempotency_store.h): a retry answers the first reply again.
  Reply Serve(const HttpRequest& request);
  // Ends the waits of GET /v1/instances/{id}?wait_for= (they answer 503); before the transport's Stop.
  void Stop() { stopping_ = true; }
  // Whether the route of `method` `path` reads a request body it cannot do without.
  bool RequiresBody(std::string_view method, std::string_view path) const;

 private:
  using Params = std::vector<std::string>;
  Reply Healthz(const Params& params, const Query&, std::string_view body);
  Reply ListInstances(const Params& params, const Query&, std::string_view body);
  Reply CreateInstance(const Params& params, const Query&, std::string_view body);
  // ?wait_for=STATE&timeout_ms=N: answers once the instance is in STATE (see events.cc).
  Reply GetInstance(const Params& params, const Query& query, std::string_view body);
  // events.cc: GET /v1/events[?since=SEQ], newline-delimited JSON streamed as it happens.
  Reply Events(const Params& params, const Query& query, std::string_view body);
  Reply DeleteInstance(const Params& params, const Query&, std::string_view body);
  Reply UpdateInstance(const Params& params, const Query&, std::string_view body);
  Reply InstanceUsage(const Params& params, const Query&, std::string_view body);
  Reply StartInstance(const Params& params, const Query&, std::string_view body);
  Reply StopInstance(const Params& params, const Query&, std::string_view body);
  Reply StandbyInstance(const Params& params, const Query&, std::string_view body);
  Reply RestoreInstance(const Params& params, const Query&, std::string_view body);
  Reply ForkInstance(const Params& params, const Query&, std::string_view body);
  // A fork request's reply: parses `body`, claims the names, runs `fork` and answers its outcomes.
  Reply Forked(const std::string& source, std::string_view body,
               const std::function<Result<std::vector<engine::ForkOutcome>>(const engine::ForkRequest&)>& fork);
  // snapshot_handlers.cc (issue #23)
  Reply TakeSnapshot(const Params& params, const Query&, std::string_view body);
  Reply ListSnapshots(const Params& params, const Query& query, std::string_view body);
  Reply GetSnapshot(const Params& params, const Query&, std::string_view body);
  Reply DeleteSnapshot(const Params& params, const Query&, std::string_view body);
  Reply SnapshotUsage(const Params& params, const Query&, std::string_view body);
  Reply ForkSnapshot(const Params& params, const Query&, std::string_view body);
  Reply StorageInfo(const Params& params, const Query&, std::string_view body);
  Reply ListNodes(const Params& params, const Query&, std::string_view body);
  Reply MetricsText(const Params& params, const Query&, std::string_view body);
  // replication_handlers.cc
  Reply TemplateFiles(const Params& params, const Query&, std::string_view body);
  Reply TemplateFileContent(const Params& params, const Query& query, std::string_view body);
  Reply CreateUpload(const Params& params, const Query&, std::string_view body);
  Reply GetUpload(const Params& params, const Query&, std::string_view body);
  Reply PutUploadChunk(const Params& params, const Query& query, std::string_view body);
  Reply DeleteUpload(const Params& params, const Query&, std::string_view body);
  // A create from the complete upload `upload`: its staged files, imported as a replica template.
  Result<engine::CreateRequest> ReplicaRequest(engine::CreateRequest request, const std::string& upload) const;
  // pool_handlers.cc
  Reply ListPools(const Params& params, const Query&, std::string_view body);
  Reply CreatePool(const Params& params, const Query&, std::string_view body);
  Reply GetPool(const Params& params, const Query&, std::string_view body);
  Reply DeletePool(const Params& params, const Query&, std::string_view body);
  Reply AcquireFromPool(const Params& params, const Query&, std::string_view body);

  struct Route {
    std::string method;
    std::string pattern;
    Reply (ApiServer::*handler)(const Params&, const Query&, std::string_view);
    bool body_required = false;  // a request without Content-Length (or chunked) is 411
    // The instance names a request of this route asks to make (Idempotency-Key routes only): what a
    // crash-cut attempt may have left. Nullopt when the body does not parse (then it is not recorded).
    std::optional<std::vector<std::string>> (*names)(const Params&, std::string_view) = nullptr;
    std::vector<std::string> query = {};  // the query parameters it reads; any other is 400
    size_t max_body = 0;                  // its body limit when above the listener's (kMaxBodyBytes)
  };
  void Completed(const HttpRequest& request, const HttpResponse& response, double seconds);
  static const std::vector<Route>& Routes();
  friend std::vector<ServedRoute> ServedRoutes();

  engine::Engine& engine_;
  Metrics& metrics_;
  engine::pools::PoolManager* pools_;
  IdempotencyStore* requests_;
  cluster::NameReservations* names_ = nullptr;
  const cluster::ClusterView* cluster_ = nullptr;
  replication::UploadStore* uploads_ = nullptr;
  std::atomic<bool> stopping_{false};
  std::atomic<int> waits_{0};  // requests waiting in GET /v1/instances/{id}?wait_for=
};

}  // namespace fe::engine::forkd
