// rtnetlink over a raw NETLINK_ROUTE socket (the kernel's <linux/rtnetlink.h>, no library): the
// handful of link, address, route and neighbour operations the agent needs. Each call is one
// request (or one dump and the requests it implies) answered before it returns; errors name the
// netlink step and the link, with errno's text ("netlink RTM_NEWLINK IFLA_ADDRESS (set MAC) on eth0:
// Cannot assign requested address"). Works in whatever network namespace the calling thread is in
// when the socket is opened.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "hypervisor/forkagent/protocol.h"

struct nlmsghdr;

namespace fe::hypervisor::forkagent {

struct Link {
  int index = 0;
  std::string name;
  unsigned type = 0;     // ARPHRD_*
  unsigned flags = 0;    // IFF_*
  bool has_mac = false;  // an Ethernet-style 6-byte address
  MacAddress mac{};
  bool is_loopback() const;
};

class Netlink {
 public:
  static Result<Netlink> Open();

  Result<std::vector<Link>> ListLinks();
  // The link with `mac`, or (mac == nullptr) the only non-loopback link with a MAC. NotFound /
  // FailedPrecondition name what was there instead.
  Result<Link> FindLink(const MacAddress* mac);

  Status SetLinkUp(const Link& link, bool up);
  Status SetMac(const Link& link, const MacAddress& mac);
  // Deletes every IPv4 address of `link` (the routes through them go with them).
  Status FlushIpv4(const Link& link);
  Status AddIpv4(const Link& link, uint32_t address, int prefix_length);
  // The IPv4 addresses (network order) and prefixes of `link`.
  Result<std::vector<std::pair<uint32_t, int>>> ListIpv4(const Link& link);
  // Creates or replaces the main table's IPv4 default route: via `gateway` on `link`.
  Status ReplaceDefaultRoute(const Link& link, uint32_t gateway);
  // Deletes the learned neighbour entries (ARP and NDP) of `link`; permanent ones stay, as with
  // `ip neigh flush dev`.
  Status FlushNeighbours(const Link& link);

 private:
  explicit Netlink(UniqueFd fd) : fd_(std::move(fd)) {}
  class Message;
  // Sends `message` with NLM_F_ACK and waits for the kernel's answer.
  Status Transact(Message& message, std::string_view step, std::string_view subject);
  // Sends a dump request and calls `each` on every answer message until NLMSG_DONE.
  template <typename Visit>
  Status Dump(Message& message, std::string_view step, std::string_view subject, Visit each);

  UniqueFd fd_;
  uint32_t sequence_ = 0;
};

}  // namespace fe::hypervisor::forkagent
