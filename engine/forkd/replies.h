// How handlers turn JSON values and failed Statuses into Replies (shared by every handlers file).
#pragma once

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "engine/forkd/server.h"

namespace fe::engine::forkd {

// `json` as compact text; invalid UTF-8 in strings is replaced rather than thrown on.
std::string DumpJson(const nlohmann::json& json);

Reply JsonReply(int status, const nlohmann::json& json);

// The status's HTTP code (http_errors.h) with the {"code","message"} body; the message is logged.
Reply ErrorReply(const Status& status);

// 204 without a body.
Reply NoContentReply();

}  // namespace fe::engine::forkd
