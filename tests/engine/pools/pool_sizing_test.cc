// The pure pool sizing policy (engine/pool_sizing.h): shrinking over budget, the busy throttle,
// minimums first, the budget fit and the parallel cap.
#include "engine/pools/pool_sizing.h"

#include <gtest/gtest.h>

namespace fe::engine::pools {
namespace {

PoolSizingInput Pool(std::string name, int min, int max, int ready, int refilling = 0, int vcpus = 1) {
  return {std::move(name), min, max, ready, refilling, vcpus};
}

SizingInput Input(std::vector<PoolSizingInput> pools, int budget, int other = 0, double busy = 0.1, int parallel = 64) {
  SizingInput input;
  input.pools = std::move(pools);
  input.budget_vcpus = budget;
  input.other_used_vcpus = other;
  input.busy_fraction = busy;
  input.busy_threshold = 0.8;
  input.max_parallel_refills = parallel;
  return input;
}

int TotalRefills(const SizingPlan& plan) {
  int total = 0;
  for (const PoolSizingDecision& decision : plan.pools) total += decision.refills;
  return total;
}

TEST(PoolSizingTest, FillsAnEmptyPoolToItsMaximumWhenIdleAndWithinBudget) {
  SizingPlan plan = PlanPoolSizing(Input({Pool("a", 2, 5, 0)}, 100));
  ASSERT_EQ(plan.pools.size(), 1u);
  EXPECT_EQ(plan.pools[0].refills, 5);
  EXPECT_EQ(plan.pools[0].removals, 0);
  EXPECT_FALSE(plan.throttled);
  EXPECT_EQ(plan.used_vcpus, 5);
}

// A pool whose Running members each hold `per_member` bytes on their own.
PoolSizingInput MemoryPool(std::string name, int min, int max, int ready, uint64_t per_member) {
  PoolSizingInput pool = Pool(std::move(name), min, max, ready);
  pool.memory_per_member_bytes = per_member;
  pool.memory_used_bytes = static_cast<uint64_t>(ready) * per_member;
  return pool;
}

constexpr uint64_t kMiB = 1 << 20;

TEST(PoolSizingTest, MembersMustFitTheMemoryBudgetSoCheapSharedMembersFitMany) {
  // 1 GiB for members: private members of 300 MiB fit three, shared ones of 48 MiB fit twenty.
  SizingInput input =
      Input({MemoryPool("private", 0, 20, 0, 300 * kMiB), MemoryPool("shared", 0, 20, 0, 48 * kMiB)}, 1000);
  input.budget_memory_bytes = 1024 * kMiB;
  input.pools.pop_back();
  SizingPlan privately = PlanPoolSizing(input);
  EXPECT_EQ(privately.pools[0].refills, 3);
  EXPECT_EQ(privately.used_memory_bytes, 900 * kMiB);
  input.pools = {MemoryPool("shared", 0, 20, 0, 48 * kMiB)};
  SizingPlan shared = PlanPoolSizing(input);
  EXPECT_EQ(shared.pools[0].refills, 20) << "bounded by the maximum, not the budget";
  EXPECT_EQ(shared.used_memory_bytes, 960 * kMiB);
  // Without a memory budget only the CPU budget counts.
  input.budget_memory_bytes = 0;
  input.pools = {MemoryPool("private", 0, 20, 0, 300 * kMiB)};
  EXPECT_EQ(PlanPoolSizing(input).pools[0].refills, 20);
}

TEST(PoolSizingTest, OverTheMemoryBudgetOnlyPoolsHoldingMemoryShrink) {
  // Running members of 200 MiB (4 ready) and Standby members holding none (6 ready); other instances
  // hold 500 MiB of a 1 GiB budget.
  SizingInput input = Input({MemoryPool("running", 1, 8, 4, 200 * kMiB), MemoryPool("standby", 0, 8, 6, 0)}, 1000);
  input.budget_memory_bytes = 1024 * kMiB;
  input.other_used_memory_bytes = 500 * kMiB;
  SizingPlan plan = PlanPoolSizing(input);
  EXPECT_EQ(plan.pools[0].removals, 2) << "1300 MiB -> 900 MiB";
  EXPECT_EQ(plan.pools[1].removals, 0) << "removing a Standby member frees no memory";
  EXPECT_EQ(plan.pools[0].refills, 0);
  EXPECT_EQ(plan.pools[1].refills, 2) << "Standby members still fit: they cost no memory";
  EXPECT_EQ(plan.used_memory_bytes, 900 * kMiB);
}

TEST(PoolSizingTest, APoolBackingOffGetsNoRefillAndLeavesTheSlotsToOthers) {
  PoolSizingInput failing = Pool("a", 2, 5, 0);
  failing.backing_off = true;
  SizingPlan plan = PlanPoolSizing(Input({failing, Pool("b", 1, 3, 0)}, 100, 0, 0.1, 2));
  EXPECT_EQ(plan.pools[0].refills, 0);
  EXPECT_EQ(plan.pools[1].refills, 2);
}

TEST(PoolSizingTest, CountsMembersBeingMadeTowardTheMaximum) {
  SizingPlan plan = PlanPoolSizing(Input({Pool("a", 0, 5, 2, 2)}, 100));
  EXPECT_EQ(plan.pools[0].refills, 1);
}

TEST(PoolSizingTest, BusyHostStartsNoRefillEvenForAnEmptyPoolBelowItsMinimum) {
  SizingPlan plan = PlanPoolSizing(Input({Pool("a", 3, 5, 0), Pool("b", 0, 2, 1)}, 100, 0, 0.95));
  EXPECT_TRUE(plan.throttled);
  EXPECT_EQ(TotalRefills(plan), 0);
}

TEST(PoolSizingTest, LoadExactlyAtTheThresholdStillRefills) {
  SizingPlan plan = PlanPoolSizing(Input({Pool("a", 0, 1, 0)}, 100, 0, 0.8));
  EXPECT_FALSE(plan.throttled);
  EXPECT_EQ(plan.pools[0].refills, 1);
}

TEST(PoolSizingTest, PoolsBelowTheirMinimumAreFilledBeforeAnyPoolGrowsTowardItsMaximum) {
  // Three refill slots: "a" is at its minimum and could grow, "b" and "c" are below theirs.
  SizingPlan plan =
      PlanPoolSizing(Input({Pool("a", 1, 10, 1), Pool("b", 2, 10, 0), Pool("c", 1, 10, 0)}, 100, 0, 0.1, 3));
  EXPECT_EQ(plan.pools[0].refills, 0);
  EXPECT_EQ(plan.pools[1].refills, 2);
  EXPECT_EQ(plan.pools[2].refills, 1);
}

TEST(PoolSizingTest, RefillsAreSharedRoundRobinAmongPoolsBelowTheirMaximum) {
  SizingPlan plan = PlanPoolSizing(Input({Pool("a", 0, 10, 0), Pool("b", 0, 10, 0)}, 100, 0, 0.1, 5));
  EXPECT_EQ(plan.pools[0].refills, 3);
  EXPECT_EQ(plan.pools[1].refills, 2);
}

TEST(PoolSizingTest, ParallelCapCountsRefillsAlreadyInFlight) {
  SizingPlan plan = PlanPoolSizing(Input({Pool("a", 0, 10, 0, 2), Pool("b", 0, 10, 0, 1)}, 100, 0, 0.1, 4));
  EXPECT_EQ(TotalRefills(plan), 1);
  SizingPlan full = PlanPoolSizing(Input({Pool("a", 0, 10, 0, 4)}, 100, 0, 0.1, 4));
  EXPECT_EQ(TotalRefills(full), 0);
}

TEST(PoolSizingTest, RefillStartsOnlyIfItsVcpusFitTheRemainingBudget) {
  // Budget 10, 4 used by running instances, 2 ready 2-vCPU members: 2 vCPUs left, one more member.
  SizingPlan plan = PlanPoolSizing(Input({Pool("a", 0, 10, 2, 0, 2)}, 10, 4));
  EXPECT_EQ(plan.pools[0].refills, 1);
  EXPECT_EQ(plan.used_vcpus, 10);
}

TEST(PoolSizingTest, CheaperMembersStillFitWhenAnExpensiveOneDoesNot) {
  SizingPlan plan = PlanPoolSizing(Input({Pool("big", 1, 4, 0, 0, 4), Pool("small", 0, 4, 0, 0, 1)}, 3));
  EXPECT_EQ(plan.pools[0].refills, 0);
  EXPECT_EQ(plan.pools[1].refills, 3);
}

TEST(PoolSizingTest, OverBudgetShrinksThePoolWithTheMostSurplusFirst) {
  // Used: 6 (running) + 5 + 3 = 14 against 10: four members must go. "a" has surplus 4 (5 - 1),
  // "b" 2 (3 - 1): a, a, then a and b tie at 2 ... the earlier pool wins ties.
  SizingPlan plan = PlanPoolSizing(Input({Pool("a", 1, 5, 5), Pool("b", 1, 5, 3)}, 10, 6));
  EXPECT_EQ(plan.pools[0].removals, 3);
  EXPECT_EQ(plan.pools[1].removals, 1);
  EXPECT_EQ(plan.used_vcpus, 10);
  EXPECT_EQ(TotalRefills(plan), 0);
}

TEST(PoolSizingTest, ShrinkingNeverGoesBelowAMinimumEvenWhenStillOverBudget) {
  SizingPlan plan = PlanPoolSizing(Input({Pool("a", 2, 5, 4), Pool("b", 3, 5, 3)}, 4, 10));
  EXPECT_EQ(plan.pools[0].removals, 2);
  EXPECT_EQ(plan.pools[1].removals, 0);
  EXPECT_EQ(TotalRefills(plan), 0);
  EXPECT_EQ(plan.used_vcpus, 15);
}

TEST(PoolSizingTest, MembersBeingMadeAreNeverRemoved) {
  // Only ready members can be deleted; the two in flight stay, so only one ready one is removable.
  SizingPlan plan = PlanPoolSizing(Input({Pool("a", 0, 5, 1, 2)}, 0));
  EXPECT_EQ(plan.pools[0].removals, 1);
}

TEST(PoolSizingTest, ShrinksWhileBusyToo) {
  SizingPlan plan = PlanPoolSizing(Input({Pool("a", 0, 5, 3)}, 2, 0, 0.99));
  EXPECT_TRUE(plan.throttled);
  EXPECT_EQ(plan.pools[0].removals, 1);
}

TEST(PoolSizingTest, ExactlyAtBudgetNeitherShrinksNorGrows) {
  SizingPlan plan = PlanPoolSizing(Input({Pool("a", 0, 5, 2, 0, 2)}, 8, 4));
  EXPECT_EQ(plan.pools[0].removals, 0);
  EXPECT_EQ(plan.pools[0].refills, 0);
}

SizingInput Acquiring(SizingInput input) {
  input.acquiring = true;
  return input;
}

TEST(PoolSizingTest, WhileAcquiresAreServedPoolsAboveTheirMinimumDoNotGrowAndSaySo) {
  SizingPlan plan = PlanPoolSizing(Acquiring(Input({Pool("a", 2, 10, 4), Pool("b", 0, 3, 3)}, 100)));
  EXPECT_EQ(TotalRefills(plan), 0);
  EXPECT_TRUE(plan.pools[0].growth_deferred);
  EXPECT_FALSE(plan.pools[1].growth_deferred);  // full: nothing waits
  EXPECT_FALSE(plan.throttled);
}

TEST(PoolSizingTest, WhileAcquiresAreServedPoolsBelowTheirMinimumStillRefillUpToItOnly) {
  // "a" needs 3 to reach its minimum of 4, then would grow to 10: only the 3 are started.
  SizingPlan plan = PlanPoolSizing(Acquiring(Input({Pool("a", 4, 10, 1)}, 100)));
  EXPECT_EQ(plan.pools[0].refills, 3);
  EXPECT_TRUE(plan.pools[0].growth_deferred);
}

TEST(PoolSizingTest, GrowthThatWaitedLongEnoughGoesAheadDuringAcquires) {
  PoolSizingInput overdue = Pool("a", 0, 5, 2);
  overdue.growth_overdue = true;
  SizingPlan plan = PlanPoolSizing(Acquiring(Input({overdue, Pool("b", 0, 5, 2)}, 100)));
  EXPECT_EQ(plan.pools[0].refills, 3);
  EXPECT_FALSE(plan.pools[0].growth_deferred);
  EXPECT_EQ(plan.pools[1].refills, 0);
  EXPECT_TRUE(plan.pools[1].growth_deferred);
}

TEST(PoolSizingTest, WithoutAcquiresNothingIsDeferred) {
  SizingPlan plan = PlanPoolSizing(Input({Pool("a", 0, 5, 2)}, 100, 0, 0.1, 1));
  EXPECT_EQ(plan.pools[0].refills, 1);  // the parallel cap, not a deferral, limits it
  EXPECT_FALSE(plan.pools[0].growth_deferred);
}

}  // namespace
}  // namespace fe::engine::pools
