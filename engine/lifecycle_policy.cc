// Lifecycle policies (issue #23): an instance's deadline and idle standby, set at create and fork or
// later by PATCH, enforced by engine/lifecycle_keeper.h through Expire and StandbyIdle.
#include <spdlog/spdlog.h>

#include "engine/engine.h"

namespace fe::engine {

Status ValidatePolicy(const std::optional<int64_t>& ttl_s, int64_t idle_standby_s) {
  const std::string bound = std::to_string(kMaxPolicySeconds);
  if (ttl_s && (*ttl_s < 1 || *ttl_s > kMaxPolicySeconds)) {
    return Status::InvalidArgument("field 'ttl_s': " + std::to_string(*ttl_s) + " is not 1.." + bound);
  }
  if (idle_standby_s < 0 || idle_standby_s > kMaxPolicySeconds) {
    return Status::InvalidArgument("field 'idle_standby_s': " + std::to_string(idle_standby_s) + " is not 0.." + bound);
  }
  return Status::Ok();
}

std::string Engine::ExpiryFrom(const std::optional<int64_t>& ttl_s) const {
  return ttl_s ? FormatRfc3339(clock_.WallNow() + std::chrono::seconds(*ttl_s)) : std::string();
}

Result<Instance> Engine::Update(const std::string& id_or_name, const InstanceUpdate& update) {
  FE_RETURN_IF_ERROR(ValidatePolicy(update.ttl_s.value_or(std::nullopt), update.idle_standby_s.value_or(0)));
  FE_ASSIGN_OR_RETURN(auto locked, LockExclusive(id_or_name));
  auto& [entry, lock] = locked;
  Instance instance = Read(entry);
  if (update.ttl_s) instance.lifecycle.expires_at = ExpiryFrom(*update.ttl_s);
  if (update.idle_standby_s) instance.lifecycle.idle_standby_s = *update.idle_standby_s;
  for (const auto& [key, value] : update.labels) {
    if (value) {
      instance.labels[key] = *value;
    } else {
      instance.labels.erase(key);
    }
  }
  FE_RETURN_IF_ERROR(ValidateLabels(instance.labels));
  FE_RETURN_IF_ERROR(Commit(entry, instance));
  return Read(entry);
}

Result<Instance> Engine::StandbyIdle(const std::string& id_or_name, int64_t idle_s) {
  FE_ASSIGN_OR_RETURN(auto locked, LockExclusive(id_or_name));
  auto& [entry, lock] = locked;
  if (Read(entry).state != InstanceState::kRunning) {
    return Status::FailedPrecondition("instance '" + id_or_name + "' is no longer Running");
  }
  Result<Instance> standby = StandbyLocked(entry);
  if (!standby.ok()) return standby.status().Annotate("idle standby of '" + id_or_name + "'");
  Instance instance = *standby;
  instance.lifecycle.stood_by_idle_at = clock_.WallNowRfc3339();
  FE_RETURN_IF_ERROR(Commit(entry, instance));
  spdlog::info("stood {} ('{}') by: idle for {} s", instance.id, instance.name, idle_s);
  events_->Publish("instance.idle_standby", {{"instance", instance.id}, {"name", instance.name}, {"idle_s", idle_s}});
  return Read(entry);
}

Status Engine::Expire(const std::string& id_or_name) {
  FE_RETURN_IF_ERROR(CheckDeleteGuard(id_or_name));
  FE_ASSIGN_OR_RETURN(auto locked, LockExclusive(id_or_name));
  const std::shared_ptr<Entry>& entry = locked.first;
  // Checked under the lock: a PATCH that moved the deadline meanwhile wins. RFC 3339 UTC with
  // milliseconds, one format: compared as text.
  const std::optional<Instance> instance = Read(entry);
  if (instance->lifecycle.expires_at.empty() || instance->lifecycle.expires_at > clock_.WallNowRfc3339()) {
    return Status::FailedPrecondition("instance '" + id_or_name + "' has not expired");
  }
  FE_RETURN_IF_ERROR(DeleteLocked(entry, id_or_name).Annotate("expiry of '" + instance->name + "'"));
  spdlog::info("deleted {} ('{}'): it expired at {}", instance->id, instance->name, instance->lifecycle.expires_at);
  events_->Publish(
      "instance.expired",
      {{"instance", instance->id}, {"name", instance->name}, {"expires_at", instance->lifecycle.expires_at}});
  return Status::Ok();
}

}  // namespace fe::engine
