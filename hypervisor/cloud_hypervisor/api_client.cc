#include "hypervisor/cloud_hypervisor/api_client.h"

namespace fe::hypervisor::cloud_hypervisor {

ApiClient::ApiClient(std::string socket_path, std::chrono::milliseconds timeout)
    : http_(std::move(socket_path), "cloud-hypervisor", timeout) {}

ApiClient::~ApiClient() = default;

Result<ApiResponse> ApiClient::Send(std::string_view method, std::string_view endpoint, const std::string& body) const {
  if (method != "GET" && method != "PUT") {
    return Status::InvalidArgument(http_.Describe(method, "/api/v1/" + std::string(endpoint)) + ": unsupported method");
  }
  FE_ASSIGN_OR_RETURN(http::Response response, http_.Send(method, "/api/v1/" + std::string(endpoint), body));
  return ApiResponse{response.status, std::move(response.body)};
}

Status ApiClient::Call(std::string_view method, std::string_view endpoint, const std::string& body) const {
  FE_ASSIGN_OR_RETURN(ApiResponse response, Send(method, endpoint, body));
  if (response.status >= 200 && response.status < 300) return Status::Ok();
  return http::HttpError(http_.Describe(method, "/api/v1/" + std::string(endpoint)), response.status, response.body);
}

}  // namespace fe::hypervisor::cloud_hypervisor
