// How handlers turn JSON values and failed Statuses into Replies (shared by every handlers file).
#pragma once

#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "engine/forkd/server.h"

namespace fe::engine::forkd {

// `json` as compact text; invalid UTF-8 in strings is replaced rather than thrown on.
std::string DumpJson(const nlohmann::json& json);

Reply JsonReply(int status, const nlohmann::json& json);

// The status's HTTP code (http_errors.h) with the {"code","message"} body; the message is logged.
Reply ErrorReply(const Status& status);

// 200 {logical_bytes, allocated_bytes, shared_bytes, exclusive_bytes, method} of a volume's usage
// (an instance's or a snapshot's), or the error; `id` names the instance in the request log.
Reply UsageReply(const Result<storage::VolumeUsage>& usage, const std::string& id);

// 204 without a body.
Reply NoContentReply();

// A request no route takes: 404, or 405 with an Allow header when `allowed` (methods served on the
// path) is not empty.
Reply UnroutedReply(std::string_view method, std::string_view path, const std::set<std::string>& allowed);

}  // namespace fe::engine::forkd
