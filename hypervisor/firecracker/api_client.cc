#include "hypervisor/firecracker/api_client.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>

#include <httplib.h>

namespace fe::hypervisor::firecracker {
namespace {

template <typename Duration>
void SetTimeouts(httplib::Client& client, Duration timeout) {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(timeout - seconds);
  client.set_connection_timeout(seconds.count(), micros.count());
  client.set_read_timeout(seconds.count(), micros.count());
  client.set_write_timeout(seconds.count(), micros.count());
}

}  // namespace

Result<ApiResponse> ApiClient::Send(std::string_view method, std::string_view path, const std::string& body,
                                    std::chrono::milliseconds timeout) const {
  const std::string request = std::string(method) + " " + std::string(path);
  httplib::Client client(socket_path_);
  client.set_address_family(AF_UNIX);
  client.set_keep_alive(false);
  SetTimeouts(client, timeout);
  const httplib::Headers headers = {{"Accept", "application/json"}};
  const std::string path_text(path);
  if (method != "GET" && method != "PUT" && method != "PATCH") {
    return Status::Internal("firecracker API: unsupported method " + std::string(method));
  }
  httplib::Result result = method == "GET"   ? client.Get(path_text, headers)
                           : method == "PUT" ? client.Put(path_text, headers, body, "application/json")
                                             : client.Patch(path_text, headers, body, "application/json");
  if (!result) {
    struct stat st {};
    if (::stat(socket_path_.c_str(), &st) != 0 && errno == ENOENT) {
      return Status::NotFound("firecracker API " + socket_path_ + ": " + request + ": socket does not exist");
    }
    return Status::Io("firecracker API " + socket_path_ + ": " + request + ": no answer (" +
                                      httplib::to_string(result.error()) + ")");
  }
  return ApiResponse{result->status, result->body};
}

Status ApiClient::ErrorFor(std::string_view method, std::string_view path, const ApiResponse& response) const {
  std::string message = response.body;
  Json body = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object() && body.contains("fault_message") && body["fault_message"].is_string()) {
    message = body["fault_message"].get<std::string>();
  }
  if (message.size() > 2000) message = message.substr(0, 2000) + "...";
  return Status(response.status == 400 ? ErrorCode::kInvalidArgument : ErrorCode::kIo,
                "firecracker API " + socket_path_ + ": " + std::string(method) + " " + std::string(path) + ": HTTP " +
                    std::to_string(response.status) + (message.empty() ? "" : ": " + message));
}

Status ApiClient::Call(std::string_view method, std::string_view path, const Json& body,
                       std::chrono::milliseconds timeout) const {
  Result<ApiResponse> response = Send(method, path, body.is_null() ? std::string() : body.dump(), timeout);
  if (!response.ok()) return response.status();
  if (response->status < 200 || response->status >= 300) return ErrorFor(method, path, *response);
  return Status::Ok();
}

Result<Json> ApiClient::Get(std::string_view path, std::chrono::milliseconds timeout) const {
  Result<ApiResponse> response = Send("GET", path, "", timeout);
  if (!response.ok()) return response.status();
  if (response->status != 200) return ErrorFor("GET", path, *response);
  Json body = Json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) {
    return Status::Io("firecracker API " + socket_path_ + ": GET " + std::string(path) +
                                      ": the answer is not a JSON object");
  }
  return body;
}

}  // namespace fe::hypervisor::firecracker
