// The routes of snapshots (issue #23): take one of an instance, list, read and delete them, fork
// one. Rolling an instance back to its snapshot is POST /v1/instances/{id}/restore {"snapshot"}
// (handlers.cc).
#include "engine/forkd/replies.h"
#include "engine/forkd/request_parsing.h"
#include "engine/forkd/server.h"

namespace fe::engine::forkd {
namespace {

using Json = nlohmann::json;

// A snapshot record as the API shows it: its own name, whose it is and the state that was taken.
Json SnapshotToJson(const engine::Instance& record) {
  const engine::SnapshotMark& mark = *record.snapshot_mark;
  const Json instance = engine::InstanceToJson(record);
  return Json{{"id", record.id},
              {"name", mark.name},
              {"instance_id", mark.instance_id},
              {"instance_name", mark.instance_name},
              {"taken_in", engine::InstanceStateName(mark.taken_in)},
              {"taken_at", record.created_at},
              {"state", engine::InstanceStateName(record.state)},
              {"hypervisor", record.hypervisor},
              {"vcpus", record.vcpus},
              {"identity", instance["identity"]},
              {"storage", instance["storage"]},
              {"memory", instance["memory"]},
              {"labels", instance["labels"]},
              {"ancestors", instance["ancestors"]}};
}

Reply SnapshotReply(int status, const Result<engine::Instance>& record) {
  return record.ok() ? JsonReply(status, SnapshotToJson(*record)) : ErrorReply(record.status());
}

}  // namespace

Reply ApiServer::TakeSnapshot(const Params& params, const Query&, std::string_view body) {
  Result<engine::SnapshotRequest> request = ParseSnapshotRequest(body);
  if (!request.ok()) return ErrorReply(request.status());
  Result<engine::ForkOutcome> taken = engine_.TakeSnapshot(params[0], *request);
  if (!taken.ok()) {
    Reply reply = ErrorReply(taken.status());
    reply.instance = params[0];
    return reply;
  }
  Reply reply = JsonReply(201, Json{{"snapshot", SnapshotToJson(taken->instance)},
                                    {"phases", engine::ForkPhasesToJson(taken->phases)},
                                    {"mechanism", taken->mechanism},
                                    {"live", taken->live}});
  reply.instance = taken->instance.parent_id;
  return reply;
}

Reply ApiServer::ListSnapshots(const Params&, const Query& query, std::string_view) {
  Result<engine::InstanceQuery> parsed = ParseSnapshotQuery(query);
  if (!parsed.ok()) return ErrorReply(parsed.status());
  ResolveInstanceNames(engine_, *parsed);
  engine::InstancePage page = engine_.List(*parsed);
  Json list = Json::array();
  for (const engine::Instance& record : page.instances) list.push_back(SnapshotToJson(record));
  Json reply{{"snapshots", std::move(list)}};
  if (page.next) reply["next_page_token"] = engine::EncodePageToken(*page.next);
  return JsonReply(200, std::move(reply));
}

Reply ApiServer::GetSnapshot(const Params& params, const Query&, std::string_view) {
  return SnapshotReply(200, engine_.GetSnapshot(params[0]));
}

Reply ApiServer::SnapshotUsage(const Params& params, const Query&, std::string_view) {
  return UsageReply(engine_.SnapshotUsage(params[0]), params[0]);
}

Reply ApiServer::DeleteSnapshot(const Params& params, const Query&, std::string_view) {
  Status deleted = engine_.DeleteSnapshot(params[0]);
  return deleted.ok() ? NoContentReply() : ErrorReply(deleted);
}

Reply ApiServer::ForkSnapshot(const Params& params, const Query&, std::string_view body) {
  return Forked(params[0], body,
                [&](const engine::ForkRequest& request) { return engine_.ForkSnapshot(params[0], request); });
}

}  // namespace fe::engine::forkd
