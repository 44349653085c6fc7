// Applying an identity to the guest for real: the network through rtnetlink and the clock through
// clock_settime. The IdentityApplier the agent runs with in a guest.
#pragma once

#include "base/status.h"
#include "hypervisor/forkagent/agent.h"
#include "hypervisor/forkagent/netlink.h"

namespace fe::hypervisor::forkagent {

// On the NIC with `previous_mac` (nullptr: the only non-loopback NIC), in this order: set it down,
// set the new MAC, flush its IPv4 addresses, add address/prefix, set it up, replace the default route
// via the gateway (when there is one), flush its neighbour table and send a gratuitous ARP. Stops at
// the first failing step, whose error names it. Running it twice with the same identity is harmless.
Status ApplyNetworkIdentity(Netlink& netlink, const GuestIdentity& identity, const MacAddress* previous_mac);

class SystemApplier : public IdentityApplier {
 public:
  Status ApplyNetwork(const GuestIdentity& identity, const MacAddress* previous_mac) override;
  Status StepClock(int64_t realtime_ns) override;
};

}  // namespace fe::hypervisor::forkagent
