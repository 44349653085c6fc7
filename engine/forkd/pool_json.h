// The API's Pool object: {"name","template","member_state","min_size","max_size","vcpus_per_member",
// "ready","refilling","hits","misses","refills","refill_failures","last_refill_error","throttled"}
// (openapi.json, components.schemas.Pool).
#pragma once

#include <nlohmann/json.hpp>

#include "engine/pools/pool.h"

namespace fe::engine::forkd {

nlohmann::json PoolToJson(const engine::pools::PoolStatus& pool);

}  // namespace fe::engine::forkd
