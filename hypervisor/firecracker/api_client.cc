#include "hypervisor/firecracker/api_client.h"

#include "base/http/http_client.h"

namespace fe::hypervisor::firecracker {

Result<ApiResponse> ApiClient::Send(std::string_view method, std::string_view path, const std::string& body,
                                    std::chrono::milliseconds timeout) const {
  if (method != "GET" && method != "PUT" && method != "PATCH") {
    return Status::Internal("firecracker API: unsupported method " + std::string(method));
  }
  const http::HttpClient http(socket_path_, "firecracker API", timeout);
  FE_ASSIGN_OR_RETURN(http::Response response, http.Send(method, path, body, {{"Accept", "application/json"}}));
  return ApiResponse{response.status, std::move(response.body)};
}

Status ApiClient::ErrorFor(std::string_view method, std::string_view path, const ApiResponse& response) const {
  // Firecracker explains a refusal in {"fault_message": ...}.
  std::string message = response.body;
  Json body = Json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object() && body.contains("fault_message") && body["fault_message"].is_string()) {
    message = body["fault_message"].get<std::string>();
  }
  return http::HttpError(http::DescribeRequest("firecracker API", method, path, socket_path_), response.status,
                         message);
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
