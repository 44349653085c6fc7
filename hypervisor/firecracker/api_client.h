// A client of Firecracker's API on its Unix socket (--api-sock): HTTP/1.1, one request per
// connection, JSON bodies (see the API's swagger, src/firecracker/swagger/firecracker.yaml). Errors
// carry Firecracker's "fault_message".
//
// Threads: one ApiClient belongs to one thread at a time.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "base/status.h"
#include "hypervisor/firecracker/json_util.h"

namespace fe::hypervisor::firecracker {

struct ApiResponse {
  int status = 0;
  std::string body;
};

class ApiClient {
 public:
  explicit ApiClient(std::string socket_path) : socket_path_(std::move(socket_path)) {}

  // Sends `method` ("GET", "PUT" or "PATCH") to `path` with `body` (JSON; empty for none) and returns
  // whatever HTTP status came back. `timeout` bounds connecting and each read and write. Fails only
  // when no answer arrived (NotFound when the socket does not exist, Io otherwise), naming the socket
  // and the request.
  Result<ApiResponse> Send(std::string_view method, std::string_view path, const std::string& body,
                           std::chrono::milliseconds timeout) const;

  // Send, with a status outside 2xx an error carrying Firecracker's fault_message, its code from
  // http::ErrorCodeForHttpStatus (base/http).
  Status Call(std::string_view method, std::string_view path, const Json& body,
              std::chrono::milliseconds timeout) const;

  // GET `path`, expecting 200 and a JSON object.
  Result<Json> Get(std::string_view path, std::chrono::milliseconds timeout) const;

  const std::string& socket_path() const { return socket_path_; }

 private:
  Status ErrorFor(std::string_view method, std::string_view path, const ApiResponse& response) const;

  std::string socket_path_;
};

}  // namespace fe::hypervisor::firecracker
