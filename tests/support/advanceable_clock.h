// A clock that runs with the real one (durations measured under it are real) and is moved on by hand:
// tests of time windows set windows of minutes, far longer than a test runs, and Advance past them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "base/clock.h"

namespace fe::test {

class AdvanceableClock final : public Clock {
 public:
  SteadyPoint Now() const override { return SystemClock().Now() + Offset(); }
  WallPoint WallNow() const override { return SystemClock().WallNow() + Offset(); }
  void Advance(std::chrono::milliseconds by) { offset_ms_ += by.count(); }

 private:
  std::chrono::milliseconds Offset() const { return std::chrono::milliseconds(offset_ms_.load()); }
  std::atomic<int64_t> offset_ms_{0};
};

}  // namespace fe::test
