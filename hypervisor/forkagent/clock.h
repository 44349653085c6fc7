// Stepping the guest's wall clock to the host's: a guest restored from a snapshot believes the time
// at which the snapshot was taken, which breaks TLS and every timeout based on CLOCK_REALTIME.
#pragma once

#include <cstdint>

#include "base/status.h"

namespace fe::hypervisor::forkagent {

// clock_settime(CLOCK_REALTIME) to `realtime_ns` (nanoseconds since the epoch). Needs CAP_SYS_TIME.
Status StepRealtimeClock(int64_t realtime_ns);

// CLOCK_REALTIME now, in nanoseconds since the epoch.
int64_t RealtimeNs();

}  // namespace fe::hypervisor::forkagent
