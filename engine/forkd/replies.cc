#include "engine/forkd/replies.h"

#include "engine/forkd/http_errors.h"

namespace fe::engine::forkd {

std::string DumpJson(const nlohmann::json& json) {
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Reply JsonReply(int status, const nlohmann::json& json) {
  Reply reply;
  reply.status = status;
  reply.body = DumpJson(json);
  return reply;
}

Reply ErrorReply(const Status& status) {
  Reply reply;
  reply.status = HttpStatusFor(status.code());
  reply.body = ErrorBody(status);
  reply.error = status.message();
  return reply;
}

Reply UsageReply(const Result<storage::VolumeUsage>& usage, const std::string& id) {
  if (!usage.ok()) {
    Reply reply = ErrorReply(usage.status());
    reply.instance = id;
    return reply;
  }
  auto optional = [](const std::optional<uint64_t>& value) {
    return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
  };
  return JsonReply(200, nlohmann::json{{"logical_bytes", usage->logical_bytes},
                                       {"allocated_bytes", usage->allocated_bytes},
                                       {"shared_bytes", optional(usage->shared_bytes)},
                                       {"exclusive_bytes", optional(usage->exclusive_bytes())},
                                       {"method", usage->method}});
}

Reply NoContentReply() {
  Reply reply;
  reply.status = 204;
  reply.content_type.clear();
  return reply;
}

Reply UnroutedReply(std::string_view method, std::string_view path, const std::set<std::string>& allowed) {
  Reply reply;
  if (allowed.empty()) {
    reply.status = 404;
    reply.error = "no route " + std::string(method) + " " + std::string(path);
    reply.body = ErrorBody("not_found", reply.error);
    return reply;
  }
  std::string allow;
  for (const std::string& name : allowed) allow += (allow.empty() ? "" : ", ") + name;
  reply.status = 405;
  reply.error = std::string(method) + " is not served on " + std::string(path) + " (allowed: " + allow + ")";
  reply.body = ErrorBody("method_not_allowed", reply.error);
  reply.headers.emplace_back("Allow", allow);
  return reply;
}

}  // namespace fe::engine::forkd
