// The /v1/pools routes: parse, call the PoolManager, answer JSON (engine/pools/pool.h has the semantics).
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/forkd/name_claim.h"
#include "engine/forkd/pool_json.h"
#include "engine/forkd/replies.h"
#include "engine/forkd/request_parsing.h"
#include "engine/forkd/server.h"

namespace fe::engine::forkd {
namespace {

using Json = nlohmann::json;

Status PoolsDisabled() { return Status::Unavailable("this server has no pool manager"); }

Reply PoolReply(int status, const Result<engine::pools::PoolStatus>& pool) {
  return pool.ok() ? JsonReply(status, PoolToJson(*pool)) : ErrorReply(pool.status());
}

}  // namespace

Reply ApiServer::ListPools(const Params&, const Query&, std::string_view) {
  if (pools_ == nullptr) return ErrorReply(PoolsDisabled());
  Json list = Json::array();
  for (const engine::pools::PoolStatus& pool : pools_->List()) list.push_back(PoolToJson(pool));
  return JsonReply(200, Json{{"pools", std::move(list)},
                             {"cpu_budget_vcpus", pools_->cpu_budget_vcpus()},
                             {"cpu_used_vcpus", pools_->cpu_used_vcpus()},
                             {"memory_budget_bytes", pools_->memory_budget_bytes()},
                             {"memory_used_bytes", pools_->memory_used_bytes()}});
}

Reply ApiServer::CreatePool(const Params&, const Query&, std::string_view body) {
  if (pools_ == nullptr) return ErrorReply(PoolsDisabled());
  Result<engine::pools::PoolSpec> spec = ParsePoolSpec(body);
  if (!spec.ok()) return ErrorReply(spec.status());
  Reply reply = PoolReply(201, pools_->Create(*spec));
  reply.instance = spec->template_id;
  return reply;
}

Reply ApiServer::GetPool(const Params& params, const Query&, std::string_view) {
  if (pools_ == nullptr) return ErrorReply(PoolsDisabled());
  return PoolReply(200, pools_->Get(params[0]));
}

Reply ApiServer::DeletePool(const Params& params, const Query&, std::string_view) {
  if (pools_ == nullptr) return ErrorReply(PoolsDisabled());
  Status deleted = pools_->Delete(params[0]);
  return deleted.ok() ? NoContentReply() : ErrorReply(deleted);
}

Reply ApiServer::AcquireFromPool(const Params& params, const Query&, std::string_view body) {
  if (pools_ == nullptr) return ErrorReply(PoolsDisabled());
  Result<engine::pools::AcquireRequest> request = ParseAcquireRequest(body);
  if (!request.ok()) return ErrorReply(request.status());
  NameClaim claim(names_, request->name.empty() ? std::vector<std::string>{} : std::vector{request->name});
  if (!claim.status().ok()) return ErrorReply(claim.status());
  Result<engine::pools::AcquireOutcome> outcome = pools_->Acquire(params[0], *request);
  claim.Settle(outcome.ok());
  if (!outcome.ok()) return ErrorReply(outcome.status());
  metrics_.RecordPoolAcquire(outcome->hit, static_cast<double>(outcome->latency_us) / 1e6);
  Reply reply = JsonReply(200, Json{{"instance", engine::InstanceToJson(outcome->instance)},
                                    {"hit", outcome->hit},
                                    {"latency_us", outcome->latency_us}});
  reply.instance = outcome->instance.id;
  if (!outcome->hit) reply.forks.push_back(outcome->instance.id);
  return reply;
}

}  // namespace fe::engine::forkd
