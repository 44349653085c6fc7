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

Reply NoContentReply() {
  Reply reply;
  reply.status = 204;
  reply.content_type.clear();
  return reply;
}

}  // namespace fe::engine::forkd
