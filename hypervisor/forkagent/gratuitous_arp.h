// A gratuitous ARP: the fork announces its new MAC for its IPv4 address, so the bridge and the
// neighbours on the segment learn where the address lives now instead of waiting for their caches
// to expire.
#pragma once

#include <cstdint>

#include "base/status.h"
#include "hypervisor/forkagent/netlink.h"

namespace fe::hypervisor::forkagent {

// Broadcasts one ARP request for `ipv4` (network order) from `mac` on `link`, through an AF_PACKET
// socket. The link must be up.
Status SendGratuitousArp(const Link& link, const MacAddress& mac, uint32_t ipv4);

}  // namespace fe::hypervisor::forkagent
