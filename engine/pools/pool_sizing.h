// The pool sizing policy: given the pools, the CPU budget and the measured host load, how many
// refills to start and how many ready members to remove, per pool. Pure (no clock, no I/O), so it is
// tested deterministically; PoolManager::Tick feeds it and carries out its decision.
//
// Cost. Every member of a pool (ready or being made) costs its template's vCPU count; running
// instances that are not pool members cost their own vCPUs. Used = non-member running vCPUs +
// sum over pools of (ready + refilling) x vcpus_per_member. Memory likewise, when there is a memory
// budget: a pool's members cost what they hold on their own (measured; estimated for the rest,
// pool_memory.cc), non-member running instances theirs; a Standby member holds none. A member must
// fit both budgets, and being over either shrinks the pools (over memory only: pools whose members
// hold memory).
//
// The policy, in order:
//   1. Over budget (used > budget): shrink. One ready member at a time is removed from the pool with
//      the largest surplus (members above its minimum that are ready; ties: the earlier pool), until
//      used <= budget or no pool has a surplus. A pool is never shrunk below its minimum, and members
//      still being made are never counted as removable.
//   2. Busy (busy_fraction > busy_threshold): no refill is started at all, whatever the pools hold
//      (even an empty pool below its minimum): prewarming must not compete with serving VMs.
//   3. Otherwise refill, at most max_parallel_refills in flight in total (refills already in flight
//      count), each only if its vCPUs fit in what remains of the budget:
//        a. pools below their minimum first, round-robin (one refill per pool per round);
//        b. then pools below their maximum, round-robin, except while acquires are being served
//           (`acquiring`): growth above the minimum then waits for a pause, so that a refill's
//           flushes do not queue in front of the acquires' own (one device flush each) during a
//           burst. The wait is bounded: a pool whose growth has waited long enough already
//           (`growth_overdue`) grows as usual. Such a pool is reported `growth_deferred`.
//      A pool whose member does not fit is skipped; a pool with cheaper members may still get one.
//      A pool backing off after failed refills (a deleted template, a full disk) is skipped too.
#pragma once

#include <string>
#include <vector>

namespace fe::engine::pools {

struct PoolSizingInput {
  std::string name;
  int min_size = 0;
  int max_size = 1;
  int ready = 0;      // members waiting to be acquired (removable)
  int refilling = 0;  // members being made (not removable; they count against budget and caps)
  int vcpus_per_member = 1;
  bool growth_overdue = false;           // growth above the minimum has waited for a pause long enough
  bool backing_off = false;              // its last refills failed: none is started until its backoff ends
  uint64_t memory_used_bytes = 0;        // its members' private memory now (measured, estimated for the rest)
  uint64_t memory_per_member_bytes = 0;  // what one member holds (0: Standby members, or not known yet)
};

struct SizingInput {
  std::vector<PoolSizingInput> pools;
  int budget_vcpus = 0;
  int other_used_vcpus = 0;  // running instances that are not pool members
  double busy_fraction = 0;  // measured, 0..1
  double busy_threshold = 0.8;
  int max_parallel_refills = 2;
  bool acquiring = false;                // an acquire was served within the quiet window (any pool)
  uint64_t budget_memory_bytes = 0;      // 0: no memory budget
  uint64_t other_used_memory_bytes = 0;  // running instances that are not pool members
};

struct PoolSizingDecision {
  int refills = 0;               // forks to start now
  int removals = 0;              // ready members to delete now
  bool growth_deferred = false;  // below its maximum, but growth waits for the acquires to pause
};

struct SizingPlan {
  std::vector<PoolSizingDecision> pools;  // one per input pool, same order
  bool throttled = false;                 // step 2 applied: the host was too busy to refill
  int used_vcpus = 0;                     // after the removals and refills of this plan
  uint64_t used_memory_bytes = 0;         // likewise
};

SizingPlan PlanPoolSizing(const SizingInput& input);

}  // namespace fe::engine::pools
