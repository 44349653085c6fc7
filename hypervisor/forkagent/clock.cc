#include "hypervisor/forkagent/clock.h"

#include <time.h>

#include <cerrno>

namespace fe::hypervisor::forkagent {

Status StepRealtimeClock(int64_t realtime_ns) {
  timespec target{};
  target.tv_sec = static_cast<time_t>(realtime_ns / 1000000000);
  target.tv_nsec = static_cast<long>(realtime_ns % 1000000000);
  if (::clock_settime(CLOCK_REALTIME, &target) != 0) {
    return Status::FromErrno(errno, "clock_settime", "CLOCK_REALTIME to " + std::to_string(realtime_ns) + " ns");
  }
  return Status::Ok();
}

int64_t RealtimeNs() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return int64_t{now.tv_sec} * 1000000000 + now.tv_nsec;
}

}  // namespace fe::hypervisor::forkagent
