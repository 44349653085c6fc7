#include "engine/pools/pool_sizing.h"

#include <algorithm>
#include <cstddef>

namespace fe::engine::pools {
namespace {

int Members(const PoolSizingInput& pool, const PoolSizingDecision& decision) {
  return pool.ready + pool.refilling + decision.refills - decision.removals;
}

// Ready members above the minimum (members being made cannot be removed).
int Surplus(const PoolSizingInput& pool, const PoolSizingDecision& decision) {
  int removable = pool.ready - decision.removals;
  return std::max(0, std::min(removable, Members(pool, decision) - pool.min_size));
}

// What is in use, in both budgets.
struct Used {
  int vcpus = 0;
  uint64_t memory = 0;
};

bool OverMemory(const SizingInput& input, uint64_t memory) {
  return input.budget_memory_bytes > 0 && memory > input.budget_memory_bytes;
}

// Round-robin: one refill per pool per round while `target(pool)` is not reached, a slot is free and
// the member fits in both budgets; stops when a round adds nothing.
template <typename Target>
void FillRoundRobin(const SizingInput& input, Target target, int& slots, Used& used, SizingPlan& plan) {
  bool progress = true;
  while (slots > 0 && progress) {
    progress = false;
    for (size_t i = 0; i < input.pools.size() && slots > 0; ++i) {
      const PoolSizingInput& pool = input.pools[i];
      PoolSizingDecision& decision = plan.pools[i];
      if (pool.backing_off || Members(pool, decision) >= target(pool)) continue;
      if (used.vcpus + pool.vcpus_per_member > input.budget_vcpus) continue;
      if (OverMemory(input, used.memory + pool.memory_per_member_bytes)) continue;
      ++decision.refills;
      used.vcpus += pool.vcpus_per_member;
      used.memory += pool.memory_per_member_bytes;
      --slots;
      progress = true;
    }
  }
}

}  // namespace

SizingPlan PlanPoolSizing(const SizingInput& input) {
  SizingPlan plan;
  plan.pools.resize(input.pools.size());
  Used used{input.other_used_vcpus, input.other_used_memory_bytes};
  int in_flight = 0;
  for (const PoolSizingInput& pool : input.pools) {
    used.vcpus += (pool.ready + pool.refilling) * pool.vcpus_per_member;
    used.memory += pool.memory_used_bytes;
    in_flight += pool.refilling;
  }

  // 1. Over a budget: shrink toward the minimums, most surplus first (over memory alone: among the
  // pools whose members hold memory).
  while (used.vcpus > input.budget_vcpus || OverMemory(input, used.memory)) {
    const bool memory_only = used.vcpus <= input.budget_vcpus;
    size_t chosen = input.pools.size();
    int most = 0;
    for (size_t i = 0; i < input.pools.size(); ++i) {
      if (memory_only && input.pools[i].memory_per_member_bytes == 0) continue;
      int surplus = Surplus(input.pools[i], plan.pools[i]);
      if (surplus > most) {
        most = surplus;
        chosen = i;
      }
    }
    if (chosen == input.pools.size()) break;  // every pool is at its minimum
    ++plan.pools[chosen].removals;
    used.vcpus -= input.pools[chosen].vcpus_per_member;
    used.memory -= std::min(used.memory, input.pools[chosen].memory_per_member_bytes);
  }

  // 2. Busy: no refill at all.
  if (input.busy_fraction > input.busy_threshold) {
    plan.throttled = true;
    plan.used_vcpus = used.vcpus;
    plan.used_memory_bytes = used.memory;
    return plan;
  }

  // 3. Refill within the budget and the parallel cap: minimums first, then toward the maximums.
  int slots = std::max(0, input.max_parallel_refills - in_flight);
  FillRoundRobin(
      input, [](const PoolSizingInput& pool) { return pool.min_size; }, slots, used, plan);
  auto growth_target = [&](const PoolSizingInput& pool) {
    if (!input.acquiring || pool.growth_overdue) return pool.max_size;
    return std::min(pool.max_size, std::max(pool.min_size, pool.ready + pool.refilling));  // hold
  };
  FillRoundRobin(input, growth_target, slots, used, plan);
  for (size_t i = 0; i < input.pools.size(); ++i) {
    const PoolSizingInput& pool = input.pools[i];
    plan.pools[i].growth_deferred = Members(pool, plan.pools[i]) < pool.max_size && growth_target(pool) < pool.max_size;
  }
  plan.used_vcpus = used.vcpus;
  plan.used_memory_bytes = used.memory;
  return plan;
}

}  // namespace fe::engine::pools
