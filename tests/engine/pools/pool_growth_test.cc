// Acquires come first: after an acquire, PoolManager holds pools' growth above their minimum back
// until acquires pause (PoolConfig::acquire_quiet) or the growth has waited
// PoolConfig::max_growth_deferral; minimums are refilled at once. Driven by Tick() and the fixture's
// clock, on real reflink storage. Failing refills back off exponentially (pool_refill.cc).
#include <chrono>

#include <gtest/gtest.h>

#include "tests/engine/pools/pool_fixture.h"

namespace fe::engine::pools {
namespace {

using namespace pools::test;
using std::chrono::minutes;

class PoolGrowthTest : public PoolTest {
 protected:
  void SetUp() override {
    acquire_quiet_ = minutes(1);
    max_growth_deferral_ = minutes(10);
    PoolTest::SetUp();
  }
  // One tick and the refills it started, finished.
  void TickAndSettle() {
    FE_ASSERT_OK(pools_->Tick());
    pools_->WaitIdle();
  }
  void Acquire(const std::string& pool, int count) {
    for (int i = 0; i < count; ++i) FE_ASSERT_OK(pools_->Acquire(pool, Named("")));
  }
};

TEST_F(PoolGrowthTest, AfterAnAcquireThePoolGrowsOnlyOnceAcquiresHavePaused) {
  ASSERT_TRUE(pools_->Create(Spec("web", 1, 4)).ok());
  FillTo("web", 4);
  Acquire("web", 2);

  TickAndSettle();
  EXPECT_EQ(StatusOf("web").ready, 2);  // above the minimum: waits
  Advance(std::chrono::seconds(59));
  TickAndSettle();
  EXPECT_EQ(StatusOf("web").ready, 2);

  Advance(std::chrono::seconds(1));  // a minute without an acquire
  TickAndSettle();
  EXPECT_EQ(StatusOf("web").ready, 4);  // two refill slots
}

TEST_F(PoolGrowthTest, FailingRefillsBackOffExponentiallyAndASuccessEndsTheWait) {
  ASSERT_TRUE(pools_->Create(Spec("web", 1, 1)).ok());
  fixture_.plugin().fail_every_prepare = true;  // a template that cannot be forked now
  TickAndSettle();
  EXPECT_EQ(StatusOf("web").counters.refill_failures, 1u);
  EXPECT_EQ(StatusOf("web").refill_backoff_ms, 100);
  TickAndSettle();  // within the wait: no attempt
  TickAndSettle();
  EXPECT_EQ(StatusOf("web").counters.refill_failures, 1u);
  int64_t wait_ms = 100;
  for (uint64_t failures = 2; failures <= 12; ++failures) {
    Advance(std::chrono::milliseconds(wait_ms));
    TickAndSettle();
    EXPECT_EQ(StatusOf("web").counters.refill_failures, failures);
    wait_ms = std::min<int64_t>(wait_ms * 2, 30'000);
    EXPECT_EQ(StatusOf("web").refill_backoff_ms, wait_ms);
  }
  EXPECT_EQ(wait_ms, 30'000) << "the wait is bounded";
  fixture_.plugin().fail_every_prepare = false;
  Advance(std::chrono::milliseconds(wait_ms));
  TickAndSettle();
  EXPECT_EQ(StatusOf("web").ready, 1);
  EXPECT_EQ(StatusOf("web").refill_backoff_ms, 0);
}

TEST_F(PoolGrowthTest, APoolBelowItsMinimumRefillsToItDuringAcquiresButNoFurther) {
  ASSERT_TRUE(pools_->Create(Spec("web", 2, 4)).ok());
  FillTo("web", 4);
  Acquire("web", 4);

  TickAndSettle();
  EXPECT_EQ(StatusOf("web").ready, 2);
  TickAndSettle();
  EXPECT_EQ(StatusOf("web").ready, 2);
}

TEST_F(PoolGrowthTest, GrowthThatWaitedTheLongestDeferralGoesAheadWhileAcquiresContinueUntilTheyPause) {
  ASSERT_TRUE(pools_->Create(Spec("web", 0, 10)).ok());
  FillTo("web", 10);
  Acquire("web", 1);
  TickAndSettle();  // growth starts waiting
  // An acquire every 4 minutes: never a minute's pause, 8 minutes waited so far.
  for (int i = 0; i < 2; ++i) {
    Advance(minutes(4));
    Acquire("web", 1);
    TickAndSettle();
  }
  EXPECT_EQ(StatusOf("web").ready, 7);

  Advance(minutes(2));  // 10 minutes waited: growth goes ahead, two refill slots per tick
  Acquire("web", 1);
  TickAndSettle();
  EXPECT_EQ(StatusOf("web").ready, 8);
  Advance(std::chrono::seconds(30));
  Acquire("web", 1);
  TickAndSettle();  // the acquires go on, and so does the growth
  EXPECT_EQ(StatusOf("web").ready, 9);

  Advance(minutes(1));  // a pause: the pool fills and the next burst waits again from scratch
  TickAndSettle();
  EXPECT_EQ(StatusOf("web").ready, 10);
  Acquire("web", 1);
  TickAndSettle();
  EXPECT_EQ(StatusOf("web").ready, 9);
}

}  // namespace
}  // namespace fe::engine::pools
