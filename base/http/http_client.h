// HTTP/1.1 over a Unix socket or TCP, one request per connection (cpp-httplib underneath): the
// transport of the hypervisor plugins' API clients (Cloud Hypervisor, Firecracker), of forkctl and
// of the cluster's etcd client, with one way to name a failed request and one mapping of HTTP
// statuses to error codes.
//
// Threads: a client is immutable; Send may be called from several threads.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <utility>

#include "base/status.h"

namespace fe::http {

struct Response {
  int status = 0;
  std::string body;
  std::string content_type;  // as the server said it ("" when it did not)
};

class HttpClient {
 public:
  // Over the Unix socket `socket_path`. `peer` names the server in errors ("cloud-hypervisor",
  // "firecracker API", "forkd"). `timeout` bounds connecting and each read and write of a request.
  HttpClient(std::string socket_path, std::string peer, std::chrono::milliseconds timeout);
  // Over TCP to host:port (plain HTTP).
  static HttpClient Tcp(std::string host, int port, std::string peer, std::chrono::milliseconds timeout);

  // From now on, keeps connections open between requests (HTTP keep-alive) and reuses one that has
  // been idle for less than `max_idle`, which must stay below the server's own idle timeout so the
  // server has not closed it; copies share the connections. (A connection the server did close is
  // seen before anything is sent on it, and a new one is made.) A GET that gets no answer on a reused
  // connection (the server closed it while the request went out) is sent once more on a new one; any
  // other method is not: it may have been served.
  void ReuseConnections(std::chrono::milliseconds max_idle);

  // Sends one request (GET, PUT, PATCH, POST or DELETE; a non-empty `body` is sent as JSON unless a
  // Content-Type header says otherwise) and
  // returns whatever HTTP status came back. Fails only when no answer arrived: NotFound when the
  // Unix socket does not exist, Io otherwise (a refused TCP connection included), with the errno or
  // transport error named.
  Result<Response> Send(std::string_view method, std::string_view path, std::string_view body,
                        const std::vector<std::pair<std::string, std::string>>& headers = {}) const;

  // GET `path` whose reply body arrives over time (a stream of events): a 2xx body is handed to
  // `receive` piece by piece as it arrives, until the server ends it or `receive` returns false; any
  // other status comes back with its whole body. `idle_timeout` (not the client's timeout) bounds each
  // wait for more of the body. Fails like Send; a stream cut by the server or the timeout is Io.
  Result<Response> Stream(std::string_view path, const std::function<bool(std::string_view)>& receive,
                          std::chrono::milliseconds idle_timeout) const;
  // The same for a request of any method with a JSON `body` (etcd's watch is a POST whose reply streams).
  Result<Response> Stream(std::string_view method, std::string_view path, std::string_view body,
                          const std::function<bool(std::string_view)>& receive,
                          std::chrono::milliseconds idle_timeout) const;

  // "<peer> <METHOD> <path> via <socket or host:port>": how errors name a request.
  std::string Describe(std::string_view method, std::string_view path) const;

  // The Unix socket, or "host:port".
  const std::string& socket_path() const { return socket_path_; }

 private:
  std::string socket_path_;  // the Unix socket, or "host:port" when port_ > 0
  std::string host_;
  int port_ = 0;
  std::string peer_;
  std::chrono::milliseconds timeout_;
  struct IdleConnections;
  std::shared_ptr<IdleConnections> idle_;  // set by ReuseConnections
};

// "<peer> <METHOD> <path> via <socket or host:port>".
std::string DescribeRequest(std::string_view peer, std::string_view method, std::string_view path,
                            std::string_view socket_path);

// The one mapping of an HTTP error status to an ErrorCode: 400, 413 and 422 -> InvalidArgument,
// 401/403 -> PermissionDenied, 404 -> NotFound, 405/409 -> Busy (the server is in the wrong state),
// 503 -> Unavailable, 507 -> NoSpace, anything else -> Io.
ErrorCode ErrorCodeForHttpStatus(int status);

// The Status for a reply outside 2xx: the mapped code and "<request>: HTTP <status>: <detail>"
// (`request` as Describe() names it; `detail` cut to 2000 bytes, omitted when empty).
Status HttpError(std::string_view request, int status, std::string_view detail);

}  // namespace fe::http
