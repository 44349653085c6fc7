#include "base/http/http_client.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <memory>
#include <mutex>

#include <httplib.h>

namespace fe::http {
namespace {

void SetTimeouts(httplib::Client& client, std::chrono::milliseconds timeout) {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(timeout - seconds);
  client.set_connection_timeout(seconds.count(), micros.count());
  client.set_read_timeout(seconds.count(), micros.count());
  client.set_write_timeout(seconds.count(), micros.count());
}

// One connection's client: over the Unix socket, or TCP to host:port when port > 0.
std::unique_ptr<httplib::Client> Connect(const std::string& socket_path, const std::string& host, int port,
                                         std::chrono::milliseconds timeout) {
  auto client =
      port > 0 ? std::make_unique<httplib::Client>(host, port) : std::make_unique<httplib::Client>(socket_path);
  if (port == 0) client->set_address_family(AF_UNIX);
  // A request is written in pieces (header, body): without this, Nagle holds the body back on TCP.
  if (port > 0) client->set_tcp_nodelay(true);
  client->set_keep_alive(false);
  SetTimeouts(*client, timeout);
  return client;
}

// A request that got no (whole) answer: NotFound when the Unix socket does not exist, else Io saying
// what happened (`what`) and httplib's error.
Status NoAnswer(const std::string& peer, const std::string& socket_path, bool tcp, std::string_view method,
                std::string_view path, std::string_view what, httplib::Error error) {
  struct stat st {};
  if (!tcp && ::stat(socket_path.c_str(), &st) != 0 && errno == ENOENT) {
    return Status::FromErrno(ENOENT, peer + " " + std::string(method) + " " + std::string(path) + ": connect to",
                             socket_path);
  }
  return Status::Io(DescribeRequest(peer, method, path, socket_path) + ": " + std::string(what) + " (" +
                    httplib::to_string(error) + ")");
}

}  // namespace

struct HttpClient::IdleConnections {
  std::chrono::milliseconds max_idle{0};
  std::mutex mutex;
  std::vector<std::pair<std::unique_ptr<httplib::Client>, std::chrono::steady_clock::time_point>> connections;

  // The connection idle the shortest time, if it is young enough; older ones are closed.
  std::unique_ptr<httplib::Client> Take() {
    std::lock_guard<std::mutex> lock(mutex);
    const auto now = std::chrono::steady_clock::now();
    while (!connections.empty()) {
      auto [connection, since] = std::move(connections.back());
      connections.pop_back();
      if (now - since < max_idle) return std::move(connection);
    }
    return nullptr;
  }
  void Give(std::unique_ptr<httplib::Client> connection) {
    std::lock_guard<std::mutex> lock(mutex);
    if (connections.size() < 64) connections.emplace_back(std::move(connection), std::chrono::steady_clock::now());
  }
};

void HttpClient::ReuseConnections(std::chrono::milliseconds max_idle) {
  idle_ = std::make_shared<IdleConnections>();
  idle_->max_idle = max_idle;
}

HttpClient::HttpClient(std::string socket_path, std::string peer, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), peer_(std::move(peer)), timeout_(timeout) {}

HttpClient HttpClient::Tcp(std::string host, int port, std::string peer, std::chrono::milliseconds timeout) {
  HttpClient client(host + ":" + std::to_string(port), std::move(peer), timeout);
  client.host_ = std::move(host);
  client.port_ = port;
  return client;
}

std::string DescribeRequest(std::string_view peer, std::string_view method, std::string_view path,
                            std::string_view socket_path) {
  std::string text(peer);
  text.append(" ").append(method).append(" ").append(path).append(" via ").append(socket_path);
  return text;
}

std::string HttpClient::Describe(std::string_view method, std::string_view path) const {
  return DescribeRequest(peer_, method, path, socket_path_);
}

Result<Response> HttpClient::Send(std::string_view method, std::string_view path, std::string_view body,
                                  const std::vector<std::pair<std::string, std::string>>& headers) const {
  if (method != "GET" && method != "PUT" && method != "PATCH" && method != "POST" && method != "DELETE") {
    return Status::InvalidArgument(Describe(method, path) + ": unsupported method");
  }
  httplib::Headers request_headers;
  std::string content_type = "application/json";
  for (const auto& [name, value] : headers) {
    if (name == "Content-Type") {
      content_type = value;
    } else {
      request_headers.emplace(name, value);
    }
  }
  const std::string target(path);
  const std::string content(body);
  // A fresh connection per request unless connections are reused: the hypervisors' API servers serve
  // one client at a time.
  std::unique_ptr<httplib::Client> connection = idle_ ? idle_->Take() : nullptr;
  const bool reused = connection != nullptr;
  for (int attempt = 0;; ++attempt) {
    if (!connection) {
      connection = Connect(socket_path_, host_, port_, timeout_);
      if (idle_) connection->set_keep_alive(true);
    }
    httplib::Client& client = *connection;
    httplib::Result result = method == "GET"     ? client.Get(target, request_headers)
                             : method == "PUT"   ? client.Put(target, request_headers, content, content_type)
                             : method == "PATCH" ? client.Patch(target, request_headers, content, content_type)
                             : method == "POST"  ? client.Post(target, request_headers, content, content_type)
                                                 : client.Delete(target, request_headers);
    if (!result) {
      connection.reset();
      if (reused && attempt == 0 && method == "GET") continue;
      return NoAnswer(peer_, socket_path_, port_ > 0, method, path, "no answer", result.error());
    }
    Response response{result->status, result->body, result->get_header_value("Content-Type")};
    if (idle_ && result->get_header_value("Connection") != "close") idle_->Give(std::move(connection));
    return response;
  }
}

Result<Response> HttpClient::Stream(std::string_view path, const std::function<bool(std::string_view)>& receive,
                                    std::chrono::milliseconds idle_timeout) const {
  return Stream("GET", path, "", receive, idle_timeout);
}

Result<Response> HttpClient::Stream(std::string_view method, std::string_view path, std::string_view body,
                                    const std::function<bool(std::string_view)>& receive,
                                    std::chrono::milliseconds idle_timeout) const {
  std::unique_ptr<httplib::Client> connection = Connect(socket_path_, host_, port_, timeout_);
  httplib::Client& client = *connection;
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(idle_timeout);
  client.set_read_timeout(seconds.count(),
                          std::chrono::duration_cast<std::chrono::microseconds>(idle_timeout - seconds).count());
  Response response;
  bool stopped_by_receiver = false;
  httplib::Request request;
  request.method = std::string(method);
  request.path = std::string(path);
  if (!body.empty()) {
    request.body = std::string(body);
    request.set_header("Content-Type", "application/json");
  }
  request.response_handler = [&](const httplib::Response& head) {
    response.status = head.status;
    return true;
  };
  request.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
    if (response.status < 200 || response.status >= 300) {
      response.body.append(data, length);
      return true;
    }
    if (!receive(std::string_view(data, length))) {
      stopped_by_receiver = true;
      return false;
    }
    return true;
  };
  httplib::Result result = client.send(request);
  if (stopped_by_receiver) return response;
  if (!result) {
    return NoAnswer(peer_, socket_path_, port_ > 0, method, path, response.status == 0 ? "no answer" : "stream cut",
                    result.error());
  }
  return response;
}

ErrorCode ErrorCodeForHttpStatus(int status) {
  switch (status) {
    case 400:
    case 413:
    case 422: return ErrorCode::kInvalidArgument;
    case 401:
    case 403: return ErrorCode::kPermissionDenied;
    case 404: return ErrorCode::kNotFound;
    case 405:
    case 409: return ErrorCode::kBusy;
    case 503: return ErrorCode::kUnavailable;
    case 507: return ErrorCode::kNoSpace;
    default: return ErrorCode::kIo;
  }
}

Status HttpError(std::string_view request, int status, std::string_view detail) {
  std::string message = std::string(request) + ": HTTP " + std::to_string(status);
  if (!detail.empty()) {
    message += ": ";
    message += detail.size() > 2000 ? std::string(detail.substr(0, 2000)) + "..." : std::string(detail);
  }
  return Status(ErrorCodeForHttpStatus(status), std::move(message));
}

}  // namespace fe::http
