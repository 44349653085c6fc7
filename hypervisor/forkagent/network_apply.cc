#include "hypervisor/forkagent/network_apply.h"

#include "hypervisor/forkagent/clock.h"
#include "hypervisor/forkagent/gratuitous_arp.h"

namespace fe::hypervisor::forkagent {

Status ApplyNetworkIdentity(Netlink& netlink, const GuestIdentity& identity, const MacAddress* previous_mac) {
  Result<Link> found = netlink.FindLink(previous_mac);
  if (!found.ok() && previous_mac != nullptr) {
    // An equal generation re-applied: the NIC already wears the new MAC.
    Result<Link> renamed = netlink.FindLink(&identity.mac);
    if (renamed.ok()) found = std::move(renamed);
  }
  if (!found.ok()) return found.status();
  const Link& link = *found;
  FE_RETURN_IF_ERROR(netlink.SetLinkUp(link, false));
  FE_RETURN_IF_ERROR(netlink.SetMac(link, identity.mac));
  FE_RETURN_IF_ERROR(netlink.FlushIpv4(link));
  FE_RETURN_IF_ERROR(netlink.AddIpv4(link, identity.ipv4, identity.prefix_length));
  FE_RETURN_IF_ERROR(netlink.SetLinkUp(link, true));
  if (identity.gateway != 0) FE_RETURN_IF_ERROR(netlink.ReplaceDefaultRoute(link, identity.gateway));
  FE_RETURN_IF_ERROR(netlink.FlushNeighbours(link));
  return SendGratuitousArp(link, identity.mac, identity.ipv4);
}

Status SystemApplier::ApplyNetwork(const GuestIdentity& identity, const MacAddress* previous_mac) {
  // A fresh socket per request: nothing stale from a previous life of the guest's memory.
  Result<Netlink> netlink = Netlink::Open();
  if (!netlink.ok()) return netlink.status();
  return ApplyNetworkIdentity(*netlink, identity, previous_mac);
}

Status SystemApplier::StepClock(int64_t realtime_ns) { return StepRealtimeClock(realtime_ns); }

}  // namespace fe::hypervisor::forkagent
