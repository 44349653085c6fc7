#include "hypervisor/cloud_hypervisor/api_client.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>

#include <httplib.h>

namespace fe::hypervisor::cloud_hypervisor {
namespace {

std::string Describe(std::string_view method, std::string_view endpoint, const std::string& socket) {
  return "cloud-hypervisor " + std::string(method) + " /api/v1/" + std::string(endpoint) + " via " + socket;
}

}  // namespace

ApiClient::ApiClient(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

ApiClient::~ApiClient() = default;

Result<ApiResponse> ApiClient::Send(std::string_view method, std::string_view endpoint,
                                    const std::string& body) const {
  // A fresh connection per request: cloud-hypervisor's API server serves one client at a time.
  httplib::Client client(socket_path_);
  client.set_address_family(AF_UNIX);
  client.set_keep_alive(false);
  client.set_connection_timeout(timeout_);
  client.set_read_timeout(timeout_);
  client.set_write_timeout(timeout_);
  if (method != "GET" && method != "PUT") {
    return Status::InvalidArgument(Describe(method, endpoint, socket_path_) + ": unsupported method");
  }
  std::string path = "/api/v1/" + std::string(endpoint);
  httplib::Result result = method == "GET" ? client.Get(path) : client.Put(path, body, "application/json");
  if (!result) {
    struct stat st {};
    if (::stat(socket_path_.c_str(), &st) != 0 && errno == ENOENT) {
      return Status::FromErrno(ENOENT, "cloud-hypervisor " + std::string(method) + " /api/v1/" +
                                           std::string(endpoint) + ": connect to", socket_path_);
    }
    return Status::Io(Describe(method, endpoint, socket_path_) + ": " + httplib::to_string(result.error()));
  }
  return ApiResponse{result->status, result->body};
}

Status ApiClient::Call(std::string_view method, std::string_view endpoint, const std::string& body) const {
  Result<ApiResponse> response = Send(method, endpoint, body);
  if (!response.ok()) return response.status();
  if (response->status >= 200 && response->status < 300) return Status::Ok();
  std::string message = Describe(method, endpoint, socket_path_) + ": HTTP " + std::to_string(response->status);
  if (!response->body.empty()) message += ": " + response->body;
  return Status(ErrorCodeForHttpStatus(response->status), std::move(message));
}

ErrorCode ErrorCodeForHttpStatus(int status) {
  switch (status) {
    case 400: return ErrorCode::kInvalidArgument;
    case 404: return ErrorCode::kNotFound;
    case 405: case 409: return ErrorCode::kBusy;
    default: return ErrorCode::kIo;
  }
}

}  // namespace fe::hypervisor::cloud_hypervisor
