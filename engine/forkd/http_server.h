// forkd's HTTP transport: an event-driven HTTP/1.1 server (Boost.Beast on Boost.Asio) that slow,
// idle or hostile clients cannot starve.
//
// Model. A few I/O threads serve every connection of every listener asynchronously; a connection
// holds no thread while it waits. A request whose header and body have arrived is handed to a pool
// of worker threads (the engine's work: forks, which take milliseconds to seconds), and its response
// is written back asynchronously, so I/O never waits on a clone and a clone never waits on I/O.
//
// Per connection, deadlines:
//   header   the whole request header must arrive within header_timeout of the connection's start or
//            of the previous response (an idle keep-alive connection is closed after it, a client
//            sending a header line now and then is cut when it runs out);
//   body     the body within body_timeout of the header;
//   write    the response within write_timeout.
// Limits, checked before any byte of a body is read: Content-Length above max_body_bytes (or the
// route's own limit, HttpHandlers::route_body_limit) is 413 (a
// chunked body is cut at the limit: 413), a header above max_header_bytes is 431, a request that
// needs a body but says neither Content-Length nor chunked is 411, a wrong or missing bearer token
// (listeners with a token) is 401 and the connection is closed. Each listener accepts at most
// max_connections; beyond that the connection waiting longest for a header is closed to make room,
// and when none waits the new one is refused. Listeners are independent: clients of one cannot take
// the connections of another.
//
// Streamed responses (HttpResponse::stream, for GET /v1/events): the header goes at once, then each
// piece the stream yields as one chunk (Transfer-Encoding: chunked), written as soon as the stream
// says it is ready; the connection closes when the stream ends, when the client closes its side
// (watched by a read while the stream is idle) or when a chunk cannot be written within
// write_timeout. Stop ends streams with their last chunk at once.
//
// Shutdown (Stop): the listeners stop accepting, connections waiting for a request are closed at
// once, requests in flight finish and get their response (then their connection closes) within
// `grace`; after it every connection is closed. Stop returns once the workers are done.
//
// Threads: Start, Stop and the listening calls from one thread; the callbacks run on workers
// (handle) and I/O threads (completed, requires_body) and must be thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace fe::engine::forkd {

struct HttpRequest {
  std::string method;
  std::string path;  // the target without its query, as sent (not percent-decoded)
  // The query's parameters in order, percent-decoded ("?since=4&x" -> {"since","4"}, {"x",""}); a
  // target whose query does not parse is 400 before any handler runs.
  std::vector<std::pair<std::string, std::string>> query;
  std::string body;
  std::string idempotency_key;  // the Idempotency-Key header; empty when absent
};

// A response body produced over time (see the file comment). Take and OnReady are called on the
// connection's I/O thread, one at a time.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  // The next piece of the body that is ready (empty: none yet); sets *finished once nothing will follow.
  virtual std::string Take(bool* finished) = 0;
  // Calls `ready` once, from any thread, when Take may have more (at once if it has). Dropping the
  // returned handle cancels the call.
  virtual std::shared_ptr<void> OnReady(std::function<void()> ready) = 0;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::shared_ptr<ResponseStream> stream;  // set: `body` is ignored and the stream is sent chunked
  // For the request log and metrics (never sent): the route table's pattern, the instance the request
  // named, the forks it made, the error of a failed request.
  std::string route = "unmatched";
  std::string instance;
  std::vector<std::string> forks;
  std::string error;
};

struct HttpHandlers {
  // The response to a complete request (on a worker thread).
  std::function<HttpResponse(const HttpRequest&)> handle;
  // Whether `method` on `path` needs a body (411 when the client sends no length).
  std::function<bool(std::string_view method, std::string_view path)> requires_body;
  // The body limit of `method` on `path` when it is not the listener's max_body_bytes (a chunk upload
  // is megabytes, a JSON request kilobytes); 0: the listener's. At most largest_route_body_bytes.
  std::function<size_t(std::string_view method, std::string_view path)> route_body_limit;
  size_t largest_route_body_bytes = 0;
  // After every response, the server's own refusals included (for the request log and metrics).
  std::function<void(const HttpRequest&, const HttpResponse&, double seconds)> completed;
  // The body of an error the server answers itself (401, 411, 413, 431, 400, 503), given the status
  // and a message.
  std::function<std::string(int status, std::string_view message)> error_body;
};

struct ListenerOptions {
  std::string name;   // "unix:/run/forkengine/forkd.sock", "tcp:127.0.0.1:7000": for the log
  std::string token;  // non-empty: every request needs "Authorization: Bearer <token>"
  size_t max_connections = 1024;
  size_t max_body_bytes = 64 * 1024;
  size_t max_header_bytes = 16 * 1024;
  std::chrono::milliseconds header_timeout{5000};
  std::chrono::milliseconds body_timeout{30000};
  std::chrono::milliseconds write_timeout{30000};
};

struct HttpServerOptions {
  size_t io_threads = 2;
  size_t worker_threads = 64;  // requests the engine works on at once (50 concurrent forks, say)
};

class HttpServer {
 public:
  HttpServer(HttpHandlers handlers, HttpServerOptions options);
  ~HttpServer();  // Stop(0) if still running
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves the listening Unix stream socket `fd` (bound and listening; the server owns it).
  Status ServeUnixSocket(int fd, ListenerOptions options);
  // Binds host:port (SO_REUSEADDR) and serves it. The port actually bound is returned (0 asks for any).
  Result<int> ServeTcp(const std::string& host, int port, ListenerOptions options);

  // Starts the I/O threads. Listeners may be added before or after.
  void Start();
  // See the file comment. Idempotent.
  void Stop(std::chrono::milliseconds grace);

  // Open connections of all listeners (for tests and metrics).
  size_t connections() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fe::engine::forkd
