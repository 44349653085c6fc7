// The TCP listener Prometheus scrapes (forkd --metrics-listen HOST:PORT). Prometheus cannot scrape a
// Unix socket, and the TCP API needs a bearer token; this listener serves GET /metrics and nothing
// else, without a token, so exposing it reveals counts and never an instance's data or a way to
// change anything. It runs on an HTTP server of its own (the same hardened transport, with one I/O
// thread and two workers): its clients never take the API's connections or workers, and a slow or
// hostile scraper meets the same deadlines and limits an API client does.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/status.h"
#include "engine/forkd/http_server.h"

namespace fe::engine::forkd {

class MetricsListener {
 public:
  // Binds host:port (0: any port) and serves `render()`'s text, which must be thread-safe.
  static Result<std::unique_ptr<MetricsListener>> Start(const std::string& host, int port,
                                                        std::function<std::string()> render);
  ~MetricsListener();  // Stop()

  int port() const { return port_; }
  // Closes the listener and its connections, letting a scrape in flight finish briefly. Idempotent.
  void Stop();

 private:
  MetricsListener() = default;

  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
};

// The listener's answer to one request: 200 with the text on GET or HEAD /metrics, 405 for another
// method there, 404 elsewhere (both with the API's JSON error body).
HttpResponse ServeMetricsRequest(const HttpRequest& request, const std::function<std::string()>& render);

}  // namespace fe::engine::forkd
