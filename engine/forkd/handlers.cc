// The route handlers: parse, call the engine, answer JSON.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/forkd/name_claim.h"
#include "engine/forkd/replies.h"
#include "engine/forkd/request_log.h"
#include "engine/forkd/request_parsing.h"
#include "engine/forkd/server.h"

namespace fe::engine::forkd {
namespace {

using Json = nlohmann::json;

Reply InstanceReply(int status, const Result<engine::Instance>& instance, const std::string& named) {
  Reply reply = instance.ok() ? JsonReply(status, engine::InstanceToJson(*instance)) : ErrorReply(instance.status());
  reply.instance = instance.ok() ? instance->id : named;
  return reply;
}

}  // namespace

Reply ApiServer::Healthz(const Params&, const Query&, std::string_view) {
  // Quarantined instances (engine/recovery.cc) need an operator: the daemon serves, but is degraded.
  Json quarantined = Json::array();
  for (const engine::QuarantinedInstance& instance : engine_.recovery().quarantined) {
    quarantined.push_back(Json{{"id", instance.id}, {"path", instance.path}, {"reason", instance.reason}});
  }
  return JsonReply(200, Json{{"status", quarantined.empty() ? "ok" : "degraded"},
                             {"instances", engine_.Count()},
                             {"quarantined", std::move(quarantined)}});
}

Reply ApiServer::ListInstances(const Params&, const Query& query, std::string_view) {
  Result<engine::InstanceQuery> parsed = ParseInstanceQuery(query);
  if (!parsed.ok()) return ErrorReply(parsed.status());
  ResolveInstanceNames(engine_, *parsed);
  engine::InstancePage page = engine_.List(*parsed);
  Json list = Json::array();
  for (const engine::Instance& instance : page.instances) list.push_back(engine::InstanceToJson(instance));
  Json reply{{"instances", std::move(list)}};
  if (page.next) reply["next_page_token"] = engine::EncodePageToken(*page.next);
  return JsonReply(200, std::move(reply));
}

Reply ApiServer::CreateInstance(const Params&, const Query&, std::string_view body) {
  std::string node, upload;
  Result<engine::CreateRequest> request = ParseCreateRequest(body, &node, &upload);
  if (!request.ok()) return ErrorReply(request.status());
  if (!upload.empty()) request = ReplicaRequest(std::move(*request), upload);
  if (!request.ok()) return ErrorReply(request.status());
  if (!node.empty() && (names_ == nullptr || node != names_->node())) {
    return ErrorReply(Status::InvalidArgument(
        "create request: field 'node': '" + node + "' is not this node (" +
        (names_ == nullptr ? std::string("this forkd is no cluster node") : names_->node()) + ")"));
  }
  NameClaim claim(names_, {request->name});
  if (!claim.status().ok()) return ErrorReply(claim.status());
  Result<engine::Instance> created = engine_.Create(*request);
  claim.Settle(created.ok());
  // The replica holds the files now: the staged copy is not needed (a failed import keeps it for a retry).
  if (created.ok() && !upload.empty()) (void)uploads_->Remove(upload);
  return InstanceReply(201, created, request->name);
}

Reply ApiServer::InstanceUsage(const Params& params, const Query&, std::string_view) {
  return UsageReply(engine_.Usage(params[0]), params[0]);
}

Reply ApiServer::DeleteInstance(const Params& params, const Query&, std::string_view) {
  Status status = engine_.Delete(params[0]);
  Reply reply = status.ok() ? NoContentReply() : ErrorReply(status);
  reply.instance = params[0];
  return reply;
}

Reply ApiServer::StartInstance(const Params& params, const Query&, std::string_view body) {
  if (Status parsed = ParseEmptyBody(body); !parsed.ok()) return ErrorReply(parsed);
  return InstanceReply(200, engine_.Start(params[0]), params[0]);
}

Reply ApiServer::StopInstance(const Params& params, const Query&, std::string_view body) {
  if (Status parsed = ParseEmptyBody(body); !parsed.ok()) return ErrorReply(parsed);
  return InstanceReply(200, engine_.Stop(params[0]), params[0]);
}

Reply ApiServer::StandbyInstance(const Params& params, const Query&, std::string_view body) {
  if (Status parsed = ParseEmptyBody(body); !parsed.ok()) return ErrorReply(parsed);
  return InstanceReply(200, engine_.Standby(params[0]), params[0]);
}

Reply ApiServer::UpdateInstance(const Params& params, const Query&, std::string_view body) {
  Result<engine::InstanceUpdate> update = ParseInstanceUpdate(body);
  if (!update.ok()) return ErrorReply(update.status());
  return InstanceReply(200, engine_.Update(params[0], *update), params[0]);
}

Reply ApiServer::RestoreInstance(const Params& params, const Query&, std::string_view body) {
  Result<std::string> snapshot = ParseRestoreRequest(body);
  if (!snapshot.ok()) return ErrorReply(snapshot.status());
  if (!snapshot->empty()) return InstanceReply(200, engine_.RollBack(params[0], *snapshot), params[0]);
  return InstanceReply(200, engine_.Restore(params[0]), params[0]);
}

Reply ApiServer::ForkInstance(const Params& params, const Query&, std::string_view body) {
  return Forked(params[0], body, [&](const engine::ForkRequest& request) { return engine_.Fork(params[0], request); });
}

Reply ApiServer::Forked(
    const std::string& source, std::string_view body,
    const std::function<Result<std::vector<engine::ForkOutcome>>(const engine::ForkRequest&)>& fork) {
  const Params params{source};
  Result<engine::ForkRequest> request = ParseForkRequest(body);
  if (!request.ok()) {
    metrics_.RecordForkFailure(request.status().code(), 1);
    Reply reply = ErrorReply(request.status());
    reply.instance = params[0];
    return reply;
  }
  NameClaim claim(names_, engine::FanOutNames(*request));
  if (!claim.status().ok()) {
    metrics_.RecordForkFailure(claim.status().code(), request->count);
    Reply reply = ErrorReply(claim.status());
    reply.instance = params[0];
    return reply;
  }
  Result<std::vector<engine::ForkOutcome>> outcomes = fork(*request);
  claim.Settle(outcomes.ok());
  if (!outcomes.ok()) {
    metrics_.RecordForkFailure(outcomes.status().code(), request->count);
    Reply reply = ErrorReply(outcomes.status());
    reply.instance = params[0];
    return reply;
  }
  metrics_.RecordForkRequest();
  Json forks = Json::array();
  std::vector<std::string> ids;
  std::string source_id = outcomes->empty() ? params[0] : outcomes->front().instance.parent_id;
  for (const engine::ForkOutcome& outcome : *outcomes) {
    metrics_.RecordFork(outcome);
    spdlog::info("{}", ForkLogLine(source_id, outcome));
    ids.push_back(outcome.instance.id);
    forks.push_back(Json{{"instance", engine::InstanceToJson(outcome.instance)},
                         {"phases", engine::ForkPhasesToJson(outcome.phases)},
                         {"mechanism", outcome.mechanism},
                         {"live", outcome.live},
                         {"files", outcome.files},
                         {"logical_bytes", outcome.logical_bytes},
                         {"shared_bytes", outcome.shared_bytes},
                         {"copied_bytes", outcome.copied_bytes}});
    if (!outcome.source_clock.empty()) forks.back()["source_clock"] = outcome.source_clock;
  }
  Reply reply = JsonReply(201, Json{{"forks", std::move(forks)}});
  reply.instance = source_id;
  reply.forks = std::move(ids);
  return reply;
}

Reply ApiServer::StorageInfo(const Params&, const Query&, std::string_view) {
  Result<engine::StorageInfo> info = engine_.Storage();
  if (!info.ok()) return ErrorReply(info.status());
  Json pool = nullptr;
  if (info->pool) {
    pool = Json{{"name", info->pool->name},
                {"data_used_bytes", info->pool->data_used_bytes},
                {"data_bytes", info->pool->data_total_bytes},
                {"metadata_used_bytes", info->pool->metadata_used_bytes},
                {"metadata_bytes", info->pool->metadata_total_bytes},
                {"fill_threshold", info->pool->fill_threshold},
                {"mode", info->pool->mode}};
  }
  Json costs = info->calibration ? storage::registry::ToJson(*info->calibration) : Json(nullptr);
  return JsonReply(200, Json{{"backend", info->backend},
                             {"root", info->root},
                             {"selection_reason", info->selection_reason},
                             {"volumes", info->volumes},
                             {"filesystem_bytes", info->filesystem_bytes},
                             {"filesystem_free_bytes", info->filesystem_free_bytes},
                             {"pool", std::move(pool)},
                             {"measured_costs", std::move(costs)}});
}

Reply ApiServer::ListNodes(const Params&, const Query&, std::string_view) {
  if (cluster_ == nullptr) {
    return ErrorReply(Status::Unavailable("this forkd is no cluster node (start it with --cluster-etcd)"));
  }
  Result<std::vector<Json>> nodes = cluster_->Nodes();
  if (!nodes.ok()) return ErrorReply(nodes.status());
  return JsonReply(200, Json{{"nodes", std::move(*nodes)}});
}

Reply ApiServer::MetricsText(const Params&, const Query&, std::string_view) {
  Reply reply;
  reply.body = metrics_.Render(ReadScrapeState(engine_, pools_));
  reply.content_type = "text/plain; version=0.0.4";
  return reply;
}

}  // namespace fe::engine::forkd
