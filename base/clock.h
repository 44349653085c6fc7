// Time as the engine and the pools read it. Passed in (EngineDependencies, PoolConfig), so tests move
// it by hand instead of sleeping; production uses SystemClock().
//
// Two readings, for two purposes: Now() is monotonic, for durations, deadlines and quiet windows;
// WallNow() is the calendar time written into metadata (created_at, updated_at). Waits on a mutex or a
// condition variable keep using std::chrono::steady_clock directly: the kernel times them, not us.
//
// Threads: every method may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace fe {

class Clock {
 public:
  using SteadyPoint = std::chrono::steady_clock::time_point;
  using WallPoint = std::chrono::system_clock::time_point;

  virtual ~Clock() = default;
  virtual SteadyPoint Now() const = 0;
  virtual WallPoint WallNow() const = 0;

  // Microseconds from `start` (a reading of Now()) to Now().
  int64_t MicrosSince(SteadyPoint start) const;
  // WallNow() as RFC 3339 UTC with milliseconds ("2026-12-05T15:42:51.123Z").
  std::string WallNowRfc3339() const;
};

// The real clocks (steady_clock, system_clock); one object for the whole process.
const Clock& SystemClock();

// `time` as RFC 3339 UTC with milliseconds.
std::string FormatRfc3339(Clock::WallPoint time);

}  // namespace fe
