// base/clock.h: RFC 3339 formatting of wall time, and durations read through an injected clock.
#include "base/clock.h"

#include <gtest/gtest.h>

#include "tests/support/advanceable_clock.h"

namespace fe {
namespace {

using namespace std::chrono_literals;

TEST(ClockTest, FormatsWallTimeAsRfc3339UtcWithMilliseconds) {
  // 2026-11-25T18:30:00.123Z is 1795631400 s after the epoch.
  const Clock::WallPoint time{std::chrono::seconds(1795631400) + 123ms};
  EXPECT_EQ(FormatRfc3339(time), "2026-11-25T18:30:00.123Z");
  EXPECT_EQ(FormatRfc3339(Clock::WallPoint{}), "1970-01-01T00:00:00.000Z");
}

TEST(ClockTest, SystemClockWallNowIsRfc3339) {
  const std::string now = SystemClock().WallNowRfc3339();
  ASSERT_EQ(now.size(), 24u) << now;
  EXPECT_EQ(now[10], 'T');
  EXPECT_EQ(now.back(), 'Z');
}

TEST(ClockTest, MicrosSinceReadsTheInjectedClock) {
  test::AdvanceableClock clock;
  const Clock::SteadyPoint start = clock.Now();
  clock.Advance(1500ms);
  EXPECT_GE(clock.MicrosSince(start), 1'500'000);
  EXPECT_LT(clock.MicrosSince(start), 60'000'000);
  const Clock::WallPoint wall = clock.WallNow();
  EXPECT_GE(wall - SystemClock().WallNow(), 1400ms) << "the wall reading moves with Advance too";
}

}  // namespace
}  // namespace fe
