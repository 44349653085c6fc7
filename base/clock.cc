#include "base/clock.h"

#include <cstdio>
#include <ctime>

namespace fe {
namespace {

class RealClock final : public Clock {
 public:
  SteadyPoint Now() const override { return std::chrono::steady_clock::now(); }
  WallPoint WallNow() const override { return std::chrono::system_clock::now(); }
};

}  // namespace

int64_t Clock::MicrosSince(SteadyPoint start) const {
  return std::chrono::duration_cast<std::chrono::microseconds>(Now() - start).count();
}

std::string Clock::WallNowRfc3339() const { return FormatRfc3339(WallNow()); }

const Clock& SystemClock() {
  static const RealClock clock;
  return clock;
}

std::string FormatRfc3339(Clock::WallPoint time) {
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() % 1000;
  std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[96];  // ample for any int fields, which keeps -Wformat-truncation quiet
  std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(millis));
  return text;
}

}  // namespace fe
