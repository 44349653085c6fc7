#include "engine/forkd/http_errors.h"

#include <nlohmann/json.hpp>

namespace fe::engine::forkd {

int HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return 200;
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kFailedPrecondition:
    case ErrorCode::kBusy: return 409;
    case ErrorCode::kUnsupported:
    case ErrorCode::kInvalidContent: return 422;
    case ErrorCode::kNoSpace: return 507;
    case ErrorCode::kUnavailable: return 503;
    case ErrorCode::kInsufficientResources: return 409;
    case ErrorCode::kTimedOut: return 504;
    case ErrorCode::kPermissionDenied: return 403;
    case ErrorCode::kIo:
    case ErrorCode::kInternal: return 500;
  }
  return 500;
}

std::string ErrorBody(std::string_view code, std::string_view message) {
  nlohmann::json body{{"code", code}, {"message", message}};
  // Messages carry paths and errno text; never let an invalid UTF-8 byte turn an error into a throw.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string ErrorBody(const Status& status) { return ErrorBody(ErrorCodeName(status.code()), status.message()); }

std::string_view ErrorCodeForHttpStatus(int http_status) {
  switch (http_status) {
    case 400: return "invalid_argument";
    case 401: return "unauthenticated";
    case 403: return "permission_denied";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 411: return "length_required";
    case 413: return "payload_too_large";
    case 414: return "uri_too_long";
    case 431: return "header_too_large";
    case 503: return "unavailable";
    default: return http_status >= 500 ? "internal" : "invalid_argument";
  }
}

}  // namespace fe::engine::forkd
