#include "engine/forkd/metrics_listener.h"

#include <chrono>
#include <utility>

#include "engine/forkd/http_errors.h"

namespace fe::engine::forkd {
namespace {

constexpr char kPath[] = "/metrics";
constexpr char kContentType[] = "text/plain; version=0.0.4";

}  // namespace

HttpResponse ServeMetricsRequest(const HttpRequest& request, const std::function<std::string()>& render) {
  HttpResponse response;
  response.route = request.path == kPath ? kPath : "unmatched";
  if (request.path != kPath) {
    response.status = 404;
    response.body =
        ErrorBody(ErrorCodeForHttpStatus(404), "no route " + request.path + ": this listener serves GET /metrics only");
    return response;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    response.status = 405;
    response.body = ErrorBody(ErrorCodeForHttpStatus(405), request.method + " /metrics: only GET is served");
    response.headers.emplace_back("Allow", "GET, HEAD");
    return response;
  }
  response.body = render();
  response.content_type = kContentType;
  return response;
}

Result<std::unique_ptr<MetricsListener>> MetricsListener::Start(const std::string& host, int port,
                                                                std::function<std::string()> render) {
  HttpHandlers handlers;
  handlers.handle = [render = std::move(render)](const HttpRequest& request) {
    return ServeMetricsRequest(request, render);
  };
  handlers.requires_body = [](std::string_view, std::string_view) { return false; };
  handlers.completed = [](const HttpRequest&, const HttpResponse&, double) {};
  handlers.error_body = [](int status, std::string_view message) {
    return ErrorBody(ErrorCodeForHttpStatus(status), message);
  };
  std::unique_ptr<MetricsListener> listener(new MetricsListener());
  listener->server_ =
      std::make_unique<HttpServer>(std::move(handlers), HttpServerOptions{.io_threads = 1, .worker_threads = 2});
  ListenerOptions options;
  options.name = "metrics:" + host + ":" + std::to_string(port);
  options.max_connections = 64;
  options.max_body_bytes = 0;
  options.header_timeout = std::chrono::milliseconds(5000);
  options.write_timeout = std::chrono::milliseconds(10000);
  FE_ASSIGN_OR_RETURN(listener->port_, listener->server_->ServeTcp(host, port, std::move(options)));
  listener->server_->Start();
  return listener;
}

MetricsListener::~MetricsListener() { Stop(); }

void MetricsListener::Stop() {
  if (server_) server_->Stop(std::chrono::milliseconds(1000));
}

}  // namespace fe::engine::forkd
