// What a pool is (its spec) and what it has done (its counters): both kept in its spec file
// (engine/pools/pool_store.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/instance.h"

namespace fe::engine::pools {

struct PoolSpec {
  std::string name;         // DNS label of at most 54 characters (members are "<name>-<8 hex>"), unique
  std::string template_id;  // the template instance (Stopped or Standby); given as id or name, stored as id
  InstanceState member_state = InstanceState::kStandby;  // Standby (template Standby) or Running
  int min_size = 0;
  int max_size = 1;  // >= min_size, >= 1
  // How members hold their RAM (ForkRequest::memory). Absent: shared where the template can share it
  // (Engine::CanShareMemory: a Standby template whose plugin maps snapshot memory), else private.
  std::optional<MemoryMode> memory;
};

// What a pool has done, cumulative since it was created: kept in its spec file (pool_store.h), saved
// after each refill-loop tick that changed them and when the manager stops, so a restart keeps them
// (a kill -9 loses at most the last tick's worth).
struct PoolCounters {
  uint64_t hits = 0;                // acquires served from ready members
  uint64_t misses = 0;              // acquires that forked on demand, or were refused with no_wait
  uint64_t refills = 0;             // members made by the refill loop
  uint64_t refill_failures = 0;     // refill forks that failed
  double refill_seconds_total = 0;  // sum of the refill forks' durations
  bool operator==(const PoolCounters&) const = default;
};

}  // namespace fe::engine::pools
