// The pools' memory budget: what Running members and other running instances hold on their own.
//
// A member costs its private memory: the pages no other process maps (smaps_rollup's Private_Clean
// + Private_Dirty). That is what it adds to the host: a shared-memory member's copies of the pages
// its guest wrote and its VMM's heap, while the template's pages it only reads are shared with every
// fork mapping them (engine/shared_memory.cc); a private member's own RAM file pages too. So a pool of
// shared-memory members holds many more members in one budget than a private one.
//
// Measured at most every memory_sample_interval (each measurement reads the smaps_rollup of every
// running instance). A pool's per-member figure is the average of its measured Running members, kept
// when they are acquired, so members being made are estimated from the template's first members;
// before any member was measured a member is estimated at nothing, so at most max_parallel_refills
// members are made before the estimate exists. Standby members hold no memory.
#include <sys/sysinfo.h>

#include <map>

#include "engine/pools/pool.h"
#include "engine/vm/process_memory.h"

namespace fe::engine::pools {

uint64_t DefaultMemoryBudget() {
  struct sysinfo info {};
  if (::sysinfo(&info) != 0) return 0;
  const uint64_t total = static_cast<uint64_t>(info.totalram) * info.mem_unit;
  return total / 10 * 8;
}

uint64_t PoolManager::MemoryUsedBy(const Pool& pool) {
  const int members = static_cast<int>(pool.ready.size()) + pool.refilling;
  const int estimated = std::max(0, members - pool.members_measured);
  return pool.memory_measured + static_cast<uint64_t>(estimated) * pool.memory_per_member;
}

void PoolManager::MeasureMemory() {
  const Clock::SteadyPoint now = Now();
  if (memory_sampled_at_ && now - *memory_sampled_at_ < config_.memory_sample_interval) return;
  memory_sampled_at_ = now;
  auto measure = [this](const Instance& instance) -> std::optional<vm::ProcessMemory> {
    if (config_.measure_memory) return config_.measure_memory(instance);
    if (!instance.process) return std::nullopt;
    Result<vm::ProcessMemory> memory = vm::ReadProcessMemory(*instance.process);
    if (!memory.ok()) return std::nullopt;
    return *memory;
  };
  struct Measured {
    uint64_t bytes = 0;
    uint64_t shared = 0;
    int count = 0;
  };
  std::map<std::string, Measured> by_pool;
  uint64_t other = 0;
  // Only Running instances hold memory: the query copies those, not every instance, under the
  // engine's lock once a sample interval.
  InstanceQuery running;
  running.state = InstanceState::kRunning;
  for (const Instance& instance : engine_.List(running).instances) {
    std::optional<vm::ProcessMemory> memory = measure(instance);
    if (!memory) continue;
    if (instance.pool.empty()) {
      other += memory->private_bytes;
    } else {
      Measured& measured = by_pool[instance.pool];
      measured.bytes += memory->private_bytes;
      measured.shared += memory->shared_bytes;
      ++measured.count;
    }
  }
  std::lock_guard lock(mutex_);
  other_memory_ = other;
  for (auto& [name, pool] : pools_) {
    const Measured measured = by_pool.count(name) ? by_pool[name] : Measured{};
    pool->memory_measured = measured.bytes;
    pool->members_measured = measured.count;
    pool->memory_shared = measured.shared;
    if (measured.count > 0) pool->memory_per_member = measured.bytes / static_cast<uint64_t>(measured.count);
    pool->memory_used = MemoryUsedBy(*pool);
  }
}

uint64_t PoolManager::memory_used_bytes() const {
  std::lock_guard lock(mutex_);
  uint64_t used = other_memory_;
  for (const auto& [name, pool] : pools_) used += pool->memory_used;
  return used;
}

}  // namespace fe::engine::pools
