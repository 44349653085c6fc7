// The one mapping from fe::ErrorCode to HTTP status codes, and the JSON error body every failed
// request carries: {"code": "<ErrorCodeName>", "message": "..."}.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace fe::engine::forkd {

// invalid_argument 400, permission_denied 403, not_found 404,
// already_exists/failed_precondition/busy/insufficient_resources 409, unsupported/invalid_content 422,
// unavailable 503, timed_out 504, no_space 507, io/internal (and anything else) 500.
int HttpStatusFor(ErrorCode code);

// {"code": code, "message": message} as text.
std::string ErrorBody(std::string_view code, std::string_view message);
std::string ErrorBody(const Status& status);

// The error code name for a status code httplib produced itself, before any handler ran
// (413 -> "payload_too_large", 404 -> "not_found", 400 -> "invalid_argument", ...).
std::string_view ErrorCodeForHttpStatus(int http_status);

}  // namespace fe::engine::forkd
