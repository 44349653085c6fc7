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

// Round-robin: one refill per pool per round while `target(pool)` is not reached, a slot is free and
// the member fits in the budget; stops when a round adds nothing.
template <typename Target>
void FillRoundRobin(const SizingInput& input, Target target, int& slots, int& used, SizingPlan& plan) {
  bool progress = true;
  while (slots > 0 && progress) {
    progress = false;
    for (size_t i = 0; i < input.pools.size() && slots > 0; ++i) {
      const PoolSizingInput& pool = input.pools[i];
      PoolSizingDecision& decision = plan.pools[i];
      if (pool.backing_off || Members(pool, decision) >= target(pool)) continue;
      if (used + pool.vcpus_per_member > input.budget_vcpus) continue;
      ++decision.refills;
      used += pool.vcpus_per_member;
      --slots;
      progress = true;
    }
  }
}

}  // namespace

SizingPlan PlanPoolSizing(const SizingInput& input) {
  SizingPlan plan;
  plan.pools.resize(input.pools.size());
  int used = input.other_used_vcpus;
  int in_flight = 0;
  for (const PoolSizingInput& pool : input.pools) {
    used += (pool.ready + pool.refilling) * pool.vcpus_per_member;
    in_flight += pool.refilling;
  }

  // 1. Over budget: shrink toward the minimums, most surplus first.
  while (used > input.budget_vcpus) {
    size_t chosen = input.pools.size();
    int most = 0;
    for (size_t i = 0; i < input.pools.size(); ++i) {
      int surplus = Surplus(input.pools[i], plan.pools[i]);
      if (surplus > most) {
        most = surplus;
        chosen = i;
      }
    }
    if (chosen == input.pools.size()) break;  // every pool is at its minimum
    ++plan.pools[chosen].removals;
    used -= input.pools[chosen].vcpus_per_member;
  }

  // 2. Busy: no refill at all.
  if (input.busy_fraction > input.busy_threshold) {
    plan.throttled = true;
    plan.used_vcpus = used;
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
  plan.used_vcpus = used;
  return plan;
}

}  // namespace fe::engine::pools
