#include "hypervisor/forkagent/netlink.h"

#include <arpa/inet.h>
#include <net/if_arp.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace fe::hypervisor::forkagent {

bool Link::is_loopback() const { return type == ARPHRD_LOOPBACK || (flags & IFF_LOOPBACK) != 0; }

// One request under construction: the header, a fixed-size body struct and its attributes.
class Netlink::Message {
 public:
  Message(uint16_t type, uint16_t flags) {
    header()->nlmsg_len = NLMSG_LENGTH(0);
    header()->nlmsg_type = type;
    header()->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
  }
  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buffer_); }

  // Appends the body struct (ifinfomsg, ifaddrmsg, rtmsg, ndmsg), zeroed.
  template <typename Body>
  Body* AddBody() {
    return static_cast<Body*>(Append(nullptr, sizeof(Body)));
  }
  void AddAttribute(uint16_t type, const void* data, size_t size) {
    rtattr* attribute = static_cast<rtattr*>(Append(nullptr, RTA_LENGTH(size)));
    attribute->rta_type = type;
    attribute->rta_len = static_cast<uint16_t>(RTA_LENGTH(size));
    std::memcpy(RTA_DATA(attribute), data, size);
  }

 private:
  void* Append(const void* data, size_t size) {
    // Requests are a few dozen bytes; the buffer is far larger than any this file builds.
    char* at = buffer_ + NLMSG_ALIGN(header()->nlmsg_len);
    std::memset(at, 0, RTA_ALIGN(size));
    if (data != nullptr) std::memcpy(at, data, size);
    header()->nlmsg_len = static_cast<uint32_t>(NLMSG_ALIGN(header()->nlmsg_len) + RTA_ALIGN(size));
    return at;
  }
  alignas(nlmsghdr) char buffer_[512] = {};
};

namespace {

// The attributes after a body struct of `body_size` bytes, by type (the last of each type wins).
template <typename Visit>
void ForEachAttribute(const nlmsghdr* message, size_t body_size, Visit visit) {
  const size_t offset = NLMSG_LENGTH(NLMSG_ALIGN(body_size));
  if (message->nlmsg_len < offset) return;
  int remaining = static_cast<int>(message->nlmsg_len - offset);
  for (const rtattr* attribute = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(message) + offset);
       RTA_OK(attribute, remaining); attribute = RTA_NEXT(attribute, remaining)) {
    visit(attribute->rta_type, RTA_DATA(attribute), RTA_PAYLOAD(attribute));
  }
}

std::string Named(const Link& link) { return link.name + " (index " + std::to_string(link.index) + ")"; }

}  // namespace

Result<Netlink> Netlink::Open() {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return Status::FromErrno(errno, "socket", "AF_NETLINK NETLINK_ROUTE");
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
    return Status::FromErrno(errno, "bind", "AF_NETLINK NETLINK_ROUTE");
  }
  return Netlink(std::move(fd));
}

template <typename Visit>
Status Netlink::Dump(Message& message, std::string_view step, std::string_view subject, Visit each) {
  message.header()->nlmsg_seq = ++sequence_;
  if (::send(fd_.get(), message.header(), message.header()->nlmsg_len, 0) < 0) {
    return Status::FromErrno(errno, "netlink " + std::string(step) + " send for", subject);
  }
  std::vector<char> storage(64 * 1024);  // a dump's answers come in datagrams of up to a page or two
  char* buffer = storage.data();
  while (true) {
    ssize_t got = ::recv(fd_.get(), buffer, storage.size(), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Status::FromErrno(errno, "netlink " + std::string(step) + " receive for", subject);
    int remaining = static_cast<int>(got);
    for (const nlmsghdr* answer = reinterpret_cast<const nlmsghdr*>(buffer); NLMSG_OK(answer, remaining);
         answer = NLMSG_NEXT(answer, remaining)) {
      if (answer->nlmsg_seq != sequence_) continue;  // a late answer to an earlier request
      if (answer->nlmsg_type == NLMSG_DONE) return Status::Ok();
      if (answer->nlmsg_type == NLMSG_ERROR) {
        const nlmsgerr* error = static_cast<const nlmsgerr*>(NLMSG_DATA(answer));
        if (error->error == 0) return Status::Ok();  // the ack of a non-dump request
        return Status::FromErrno(-error->error, "netlink " + std::string(step) + " on", subject);
      }
      each(answer);
    }
  }
}

Status Netlink::Transact(Message& message, std::string_view step, std::string_view subject) {
  message.header()->nlmsg_flags |= NLM_F_ACK;
  return Dump(message, step, subject, [](const nlmsghdr*) {});
}

Result<std::vector<Link>> Netlink::ListLinks() {
  Message message(RTM_GETLINK, NLM_F_DUMP);
  message.AddBody<ifinfomsg>()->ifi_family = AF_UNSPEC;
  std::vector<Link> links;
  Status dumped = Dump(message, "RTM_GETLINK (list links)", "all links", [&](const nlmsghdr* answer) {
    if (answer->nlmsg_type != RTM_NEWLINK) return;
    const ifinfomsg* info = static_cast<const ifinfomsg*>(NLMSG_DATA(answer));
    Link link;
    link.index = info->ifi_index;
    link.type = info->ifi_type;
    link.flags = info->ifi_flags;
    ForEachAttribute(answer, sizeof(ifinfomsg), [&](unsigned short type, const void* data, size_t size) {
      if (type == IFLA_IFNAME)
        link.name.assign(static_cast<const char*>(data), strnlen(static_cast<const char*>(data), size));
      if (type == IFLA_ADDRESS && size == link.mac.size()) {
        link.has_mac = true;
        std::memcpy(link.mac.data(), data, size);
      }
    });
    links.push_back(std::move(link));
  });
  if (!dumped.ok()) return dumped;
  return links;
}

Result<Link> Netlink::FindLink(const MacAddress* mac) {
  Result<std::vector<Link>> links = ListLinks();
  if (!links.ok()) return links.status();
  std::vector<Link> candidates;
  std::string seen;
  for (const Link& link : *links) {
    if (link.is_loopback() || !link.has_mac) continue;
    seen += (seen.empty() ? "" : ", ") + link.name + " " + FormatMac(link.mac);
    if (mac == nullptr || link.mac == *mac) candidates.push_back(link);
  }
  if (mac != nullptr && candidates.empty()) {
    return Status::NotFound("no NIC has MAC " + FormatMac(*mac) + " (NICs: " + (seen.empty() ? "none" : seen) + ")");
  }
  if (candidates.size() != 1) {
    return Status::FailedPrecondition(candidates.empty()
                                          ? "the guest has no NIC besides loopback"
                                          : "no previous_mac given and the guest has several NICs: " + seen);
  }
  return candidates.front();
}

Status Netlink::SetLinkUp(const Link& link, bool up) {
  Message message(RTM_NEWLINK, 0);
  ifinfomsg* info = message.AddBody<ifinfomsg>();
  info->ifi_family = AF_UNSPEC;
  info->ifi_index = link.index;
  info->ifi_change = IFF_UP;
  info->ifi_flags = up ? IFF_UP : 0;
  return Transact(message, up ? "RTM_NEWLINK IFF_UP (set link up)" : "RTM_NEWLINK ~IFF_UP (set link down)",
                  Named(link));
}

Status Netlink::SetMac(const Link& link, const MacAddress& mac) {
  Message message(RTM_NEWLINK, 0);
  ifinfomsg* info = message.AddBody<ifinfomsg>();
  info->ifi_family = AF_UNSPEC;
  info->ifi_index = link.index;
  message.AddAttribute(IFLA_ADDRESS, mac.data(), mac.size());
  return Transact(message, "RTM_NEWLINK IFLA_ADDRESS (set MAC " + FormatMac(mac) + ")", Named(link));
}

Result<std::vector<std::pair<uint32_t, int>>> Netlink::ListIpv4(const Link& link) {
  Message message(RTM_GETADDR, NLM_F_DUMP);
  message.AddBody<ifaddrmsg>()->ifa_family = AF_INET;
  std::vector<std::pair<uint32_t, int>> addresses;
  Status dumped = Dump(message, "RTM_GETADDR (list IPv4 addresses)", Named(link), [&](const nlmsghdr* answer) {
    if (answer->nlmsg_type != RTM_NEWADDR) return;
    const ifaddrmsg* info = static_cast<const ifaddrmsg*>(NLMSG_DATA(answer));
    if (info->ifa_family != AF_INET || static_cast<int>(info->ifa_index) != link.index) return;
    uint32_t local = 0;
    bool found = false;
    ForEachAttribute(answer, sizeof(ifaddrmsg), [&](unsigned short type, const void* data, size_t size) {
      // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on point-to-point links.
      if ((type == IFA_LOCAL || (type == IFA_ADDRESS && !found)) && size == sizeof(local)) {
        std::memcpy(&local, data, size);
        found = true;
      }
    });
    if (found) addresses.emplace_back(local, info->ifa_prefixlen);
  });
  if (!dumped.ok()) return dumped;
  return addresses;
}

Status Netlink::FlushIpv4(const Link& link) {
  Result<std::vector<std::pair<uint32_t, int>>> addresses = ListIpv4(link);
  if (!addresses.ok()) return addresses.status();
  for (const auto& [address, prefix_length] : *addresses) {
    Message message(RTM_DELADDR, 0);
    ifaddrmsg* info = message.AddBody<ifaddrmsg>();
    info->ifa_family = AF_INET;
    info->ifa_prefixlen = static_cast<unsigned char>(prefix_length);
    info->ifa_index = static_cast<unsigned>(link.index);
    message.AddAttribute(IFA_LOCAL, &address, sizeof(address));
    Status deleted = Transact(message, "RTM_DELADDR (flush " + FormatIpv4(address) + ")", Named(link));
    // EADDRNOTAVAIL: gone already (a secondary address removed with its primary).
    if (!deleted.ok() && deleted.sys_errno() != EADDRNOTAVAIL) return deleted;
  }
  return Status::Ok();
}

Status Netlink::AddIpv4(const Link& link, uint32_t address, int prefix_length) {
  Message message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
  ifaddrmsg* info = message.AddBody<ifaddrmsg>();
  info->ifa_family = AF_INET;
  info->ifa_prefixlen = static_cast<unsigned char>(prefix_length);
  info->ifa_scope = RT_SCOPE_UNIVERSE;
  info->ifa_index = static_cast<unsigned>(link.index);
  message.AddAttribute(IFA_LOCAL, &address, sizeof(address));
  message.AddAttribute(IFA_ADDRESS, &address, sizeof(address));
  if (prefix_length < 31) {
    uint32_t host_mask = prefix_length == 0 ? ~0u : (~0u >> prefix_length);
    uint32_t broadcast = address | htonl(host_mask);
    message.AddAttribute(IFA_BROADCAST, &broadcast, sizeof(broadcast));
  }
  return Transact(message, "RTM_NEWADDR (add " + FormatIpv4(address) + "/" + std::to_string(prefix_length) + ")",
                  Named(link));
}

Status Netlink::ReplaceDefaultRoute(const Link& link, uint32_t gateway) {
  Message message(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
  rtmsg* route = message.AddBody<rtmsg>();
  route->rtm_family = AF_INET;
  route->rtm_dst_len = 0;
  route->rtm_table = RT_TABLE_MAIN;
  route->rtm_protocol = RTPROT_BOOT;
  route->rtm_scope = RT_SCOPE_UNIVERSE;
  route->rtm_type = RTN_UNICAST;
  message.AddAttribute(RTA_GATEWAY, &gateway, sizeof(gateway));
  uint32_t oif = static_cast<uint32_t>(link.index);
  message.AddAttribute(RTA_OIF, &oif, sizeof(oif));
  return Transact(message, "RTM_NEWROUTE (default via " + FormatIpv4(gateway) + ")", Named(link));
}

Status Netlink::FlushNeighbours(const Link& link) {
  struct Entry {
    ndmsg header;
    std::vector<char> destination;
  };
  std::vector<Entry> entries;
  Message dump(RTM_GETNEIGH, NLM_F_DUMP);
  dump.AddBody<ndmsg>()->ndm_family = AF_UNSPEC;
  Status dumped = Dump(dump, "RTM_GETNEIGH (list neighbours)", Named(link), [&](const nlmsghdr* answer) {
    if (answer->nlmsg_type != RTM_NEWNEIGH) return;
    const ndmsg* neighbour = static_cast<const ndmsg*>(NLMSG_DATA(answer));
    if (neighbour->ndm_ifindex != link.index || (neighbour->ndm_state & (NUD_PERMANENT | NUD_NOARP)) != 0) return;
    if (neighbour->ndm_family != AF_INET && neighbour->ndm_family != AF_INET6) return;
    Entry entry{*neighbour, {}};
    ForEachAttribute(answer, sizeof(ndmsg), [&](unsigned short type, const void* data, size_t size) {
      if (type == NDA_DST)
        entry.destination.assign(static_cast<const char*>(data), static_cast<const char*>(data) + size);
    });
    if (!entry.destination.empty()) entries.push_back(std::move(entry));
  });
  if (!dumped.ok()) return dumped;
  for (const Entry& entry : entries) {
    Message message(RTM_DELNEIGH, 0);
    ndmsg* neighbour = message.AddBody<ndmsg>();
    neighbour->ndm_family = entry.header.ndm_family;
    neighbour->ndm_ifindex = link.index;
    message.AddAttribute(NDA_DST, entry.destination.data(), entry.destination.size());
    Status deleted = Transact(message, "RTM_DELNEIGH (flush a neighbour)", Named(link));
    if (!deleted.ok() && deleted.sys_errno() != ENOENT) return deleted;  // ENOENT: expired meanwhile
  }
  return Status::Ok();
}

}  // namespace fe::hypervisor::forkagent
