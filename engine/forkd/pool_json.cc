#include "engine/forkd/pool_json.h"

#include <string>

namespace fe::engine::forkd {

nlohmann::json PoolToJson(const engine::pools::PoolStatus& pool) {
  return nlohmann::json{{"name", pool.spec.name},
                        {"template", pool.spec.template_id},
                        {"member_state", std::string(engine::InstanceStateName(pool.spec.member_state))},
                        {"memory", engine::MemoryModeName(pool.memory)},
                        {"min_size", pool.spec.min_size},
                        {"max_size", pool.spec.max_size},
                        {"vcpus_per_member", pool.vcpus_per_member},
                        {"ready", pool.ready},
                        {"refilling", pool.refilling},
                        {"hits", pool.counters.hits},
                        {"misses", pool.counters.misses},
                        {"refills", pool.counters.refills},
                        {"refill_failures", pool.counters.refill_failures},
                        {"last_refill_error", pool.last_refill_error},
                        {"throttled", pool.throttled},
                        {"refill_backoff_ms", pool.refill_backoff_ms},
                        {"memory_per_member_bytes", pool.memory_per_member_bytes},
                        {"memory_used_bytes", pool.memory_used_bytes},
                        {"memory_shared_bytes", pool.memory_shared_bytes}};
}

}  // namespace fe::engine::forkd
