#include "hypervisor/forkagent/gratuitous_arp.h"

#include <arpa/inet.h>
#include <net/if_arp.h>
#include <linux/if_ether.h>
#include <netpacket/packet.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"

namespace fe::hypervisor::forkagent {
namespace {

// An Ethernet ARP packet for IPv4 (RFC 826), laid out as on the wire.
struct [[gnu::packed]] ArpPacket {
  uint16_t hardware_type;
  uint16_t protocol_type;
  uint8_t hardware_size;
  uint8_t protocol_size;
  uint16_t opcode;
  uint8_t sender_mac[6];
  uint32_t sender_ip;
  uint8_t target_mac[6];
  uint32_t target_ip;
};

}  // namespace

Status SendGratuitousArp(const Link& link, const MacAddress& mac, uint32_t ipv4) {
  const std::string subject = link.name + " for " + FormatIpv4(ipv4);
  UniqueFd fd(::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP)));
  if (!fd) return Status::FromErrno(errno, "socket AF_PACKET (gratuitous ARP) on", subject);
  ArpPacket packet{};
  packet.hardware_type = htons(ARPHRD_ETHER);
  packet.protocol_type = htons(ETH_P_IP);
  packet.hardware_size = 6;
  packet.protocol_size = 4;
  packet.opcode = htons(ARPOP_REQUEST);  // a request for our own address: what Linux's arping -U sends
  std::memcpy(packet.sender_mac, mac.data(), 6);
  packet.sender_ip = ipv4;
  packet.target_ip = ipv4;  // target_mac stays zero
  sockaddr_ll destination{};
  destination.sll_family = AF_PACKET;
  destination.sll_protocol = htons(ETH_P_ARP);
  destination.sll_ifindex = link.index;
  destination.sll_halen = 6;
  std::memset(destination.sll_addr, 0xff, 6);  // broadcast
  if (::sendto(fd.get(), &packet, sizeof(packet), 0, reinterpret_cast<sockaddr*>(&destination), sizeof(destination)) <
      0) {
    return Status::FromErrno(errno, "sendto AF_PACKET (gratuitous ARP) on", subject);
  }
  return Status::Ok();
}

}  // namespace fe::hypervisor::forkagent
