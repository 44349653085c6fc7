// A client of cloud-hypervisor's REST API on its Unix socket (--api-socket): HTTP/1.1, one request
// per connection, JSON bodies, endpoints under /api/v1/ (vmm.ping, vm.pause, vm.snapshot, ...).
//
// Threads: one ApiClient belongs to one thread at a time.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "base/http/http_client.h"
#include "base/status.h"

namespace fe::hypervisor::cloud_hypervisor {

struct ApiResponse {
  int status = 0;
  std::string body;
};

class ApiClient {
 public:
  // `timeout` bounds connecting and each read/write of a request (a snapshot of a large guest takes
  // a while: give it minutes).
  ApiClient(std::string socket_path, std::chrono::milliseconds timeout);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // Sends `method` ("GET" or "PUT") to /api/v1/<endpoint> with `body` (JSON, may be empty) and
  // returns whatever HTTP status came back. Fails only when no answer arrived: NotFound when the
  // socket does not exist, Io otherwise; the error names the socket and the request.
  Result<ApiResponse> Send(std::string_view method, std::string_view endpoint, const std::string& body) const;

  // Send, with any status outside 2xx an error carrying cloud-hypervisor's message, its code from
  // http::ErrorCodeForHttpStatus (404: no VM; 405/409: Busy, the VM is in the wrong state).
  Status Call(std::string_view method, std::string_view endpoint, const std::string& body = "") const;

  const std::string& socket_path() const { return http_.socket_path(); }

 private:
  http::HttpClient http_;
};

}  // namespace fe::hypervisor::cloud_hypervisor
