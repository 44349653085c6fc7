// What a Running instance's hypervisor process holds in memory (engine/vm/process_memory.h), as the
// API shows it in an instance's `memory.resident` and /v1/metrics sums it over the host.
#pragma once

#include <optional>

#include <nlohmann/json.hpp>

#include "engine/instance.h"
#include "engine/vm/process_memory.h"

namespace fe::engine::forkd {

// nullopt unless the instance is Running and its process still runs.
std::optional<vm::ProcessMemory> ResidentMemory(const engine::Instance& instance);

// InstanceToJson with memory.resident: {rss_bytes, pss_bytes, private_bytes, anonymous_bytes, shared_bytes},
// or null when the instance has no running process.
nlohmann::json InstanceViewWithMemory(const engine::Instance& instance);

}  // namespace fe::engine::forkd
