// Applying an identity with rtnetlink to a real veth interface, inside a network namespace of the
// test's own (unshare(CLONE_NEWNET) in a thread: a network namespace is per thread, and the `ip`
// processes it starts inherit it). What changed is read back with iproute2, not with the code under
// test.
#include "hypervisor/forkagent/network_apply.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <netpacket/packet.h>
#include <sched.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/process.h"
#include "tests/support/network_namespace.h"

namespace fe::hypervisor::forkagent {
namespace {

using Json = nlohmann::json;

void Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  Status status = RunProcessChecked(argv);
  ASSERT_TRUE(status.ok()) << status.ToString();
}

Json IpJson(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip", "-j"};
  argv.insert(argv.end(), args.begin(), args.end());
  Result<ProcessResult> run = RunProcess(argv);
  if (!run.ok() || run->exit_code != 0) return Json();
  return Json::parse(run->output, nullptr, false);
}

GuestIdentity NewIdentity() {
  GuestIdentity identity;
  identity.mac = ParseMac("02:fe:0a:64:00:05").value();
  identity.ipv4 = ParseIpv4("10.100.0.5").value();
  identity.prefix_length = 16;
  identity.gateway = ParseIpv4("10.100.0.1").value();
  return identity;
}

// fe0 plays the guest's NIC with the source's identity (address, default route, a learned and a
// permanent neighbour); fe1, its peer, is the segment that hears the gratuitous ARP.
void MakeSourceNic() {
  Ip({"link", "add", "fe0", "address", "02:fe:0a:64:00:02", "type", "veth", "peer", "name", "fe1"});
  Ip({"link", "set", "fe1", "up"});
  Ip({"link", "set", "fe0", "up"});
  Ip({"addr", "add", "10.99.0.2/24", "dev", "fe0"});
  Ip({"addr", "add", "10.99.0.3/24", "dev", "fe0"});  // a secondary, deleted with its primary
  Ip({"route", "add", "default", "via", "10.99.0.1"});
  Ip({"neigh", "add", "10.99.0.7", "lladdr", "02:00:00:00:00:07", "dev", "fe0", "nud", "stale"});
  Ip({"neigh", "add", "10.99.0.8", "lladdr", "02:00:00:00:00:08", "dev", "fe0", "nud", "permanent"});
  Ip({"neigh", "add", "fd00::7", "lladdr", "02:00:00:00:00:07", "dev", "fe0", "nud", "stale"});
}

// An AF_PACKET socket that receives the ARP frames arriving on `interface`.
UniqueFd ArpListener(const char* interface) {
  UniqueFd fd(::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP)));
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(ETH_P_ARP);
  address.sll_ifindex = static_cast<int>(::if_nametoindex(interface));
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
  timeval bound{10, 0};  // a bound on waiting for a frame already sent, not a timing assertion
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof(bound));
  return fd;
}

void ExpectNewIdentity() {
  Json link = IpJson({"link", "show", "fe0"});
  ASSERT_TRUE(link.is_array() && link.size() == 1) << link;
  EXPECT_EQ(link[0]["address"], "02:fe:0a:64:00:05");
  EXPECT_NE(std::find(link[0]["flags"].begin(), link[0]["flags"].end(), "UP"), link[0]["flags"].end()) << link;

  Json addresses = IpJson({"-4", "addr", "show", "dev", "fe0"});
  ASSERT_TRUE(addresses.is_array() && addresses.size() == 1) << addresses;
  const Json& info = addresses[0]["addr_info"];
  ASSERT_EQ(info.size(), 1u) << info;
  EXPECT_EQ(info[0]["local"], "10.100.0.5");
  EXPECT_EQ(info[0]["prefixlen"], 16);
  EXPECT_EQ(info[0]["broadcast"], "10.100.255.255");

  Json routes = IpJson({"-4", "route", "show", "default"});
  ASSERT_TRUE(routes.is_array() && routes.size() == 1) << routes;
  EXPECT_EQ(routes[0]["gateway"], "10.100.0.1");
  EXPECT_EQ(routes[0]["dev"], "fe0");

  // Setting the link down already drops its neighbours, permanent ones included.
  Json neighbours = IpJson({"neigh", "show", "dev", "fe0"});
  EXPECT_EQ(neighbours, Json::array()) << "the source's neighbours are gone";
}

std::vector<std::string> Neighbours(const char* interface) {
  std::vector<std::string> destinations;
  for (const Json& neighbour : IpJson({"neigh", "show", "dev", interface})) destinations.push_back(neighbour["dst"]);
  std::sort(destinations.begin(), destinations.end());
  return destinations;
}

class ForkagentNetworkApplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<ProcessResult> ip = RunProcess({"ip", "-V"});
    if (!ip.ok() || ip->exit_code != 0) GTEST_SKIP() << "iproute2's ip is not installed";
  }
};

TEST_F(ForkagentNetworkApplyTest, SetsMacAddressRouteFlushesNeighboursAndAnnounces) {
  std::string why = fe::test::RunInNewNetworkNamespace([] {
    ASSERT_NO_FATAL_FAILURE(MakeSourceNic());
    UniqueFd listener = ArpListener("fe1");
    Result<Netlink> netlink = Netlink::Open();
    ASSERT_TRUE(netlink.ok()) << netlink.status().ToString();
    const GuestIdentity identity = NewIdentity();
    const MacAddress previous = ParseMac("02:fe:0a:64:00:02").value();
    Status applied = ApplyNetworkIdentity(*netlink, identity, &previous);
    ASSERT_TRUE(applied.ok()) << applied.ToString();
    ExpectNewIdentity();

    // The gratuitous ARP reached the peer: a request for 10.100.0.5 from the new MAC. Other ARP
    // frames (the kernel's own probes) may come first.
    bool announced = false;
    for (int frame = 0; frame < 20 && !announced; ++frame) {
      unsigned char buffer[128];
      ssize_t got = ::recv(listener.get(), buffer, sizeof(buffer), 0);
      if (got < static_cast<ssize_t>(sizeof(ether_arp))) break;
      const ether_arp* arp = reinterpret_cast<const ether_arp*>(buffer);
      announced = std::memcmp(arp->arp_sha, identity.mac.data(), 6) == 0 &&
                  std::memcmp(arp->arp_spa, &identity.ipv4, 4) == 0 &&
                  std::memcmp(arp->arp_tpa, &identity.ipv4, 4) == 0;
    }
    EXPECT_TRUE(announced) << "no gratuitous ARP for 10.100.0.5 from 02:fe:0a:64:00:05 on the peer";
  });
  if (!why.empty()) GTEST_SKIP() << why;
}

TEST_F(ForkagentNetworkApplyTest, ApplyingTheSameIdentityAgainFindsTheNicByItsNewMac) {
  std::string why = fe::test::RunInNewNetworkNamespace([] {
    ASSERT_NO_FATAL_FAILURE(MakeSourceNic());
    Result<Netlink> netlink = Netlink::Open();
    ASSERT_TRUE(netlink.ok()) << netlink.status().ToString();
    const MacAddress previous = ParseMac("02:fe:0a:64:00:02").value();
    ASSERT_TRUE(ApplyNetworkIdentity(*netlink, NewIdentity(), &previous).ok());
    Status again = ApplyNetworkIdentity(*netlink, NewIdentity(), &previous);
    ASSERT_TRUE(again.ok()) << again.ToString();
    ExpectNewIdentity();
  });
  if (!why.empty()) GTEST_SKIP() << why;
}

TEST_F(ForkagentNetworkApplyTest, UnknownPreviousMacOrAmbiguousNicChangesNothing) {
  std::string why = fe::test::RunInNewNetworkNamespace([] {
    ASSERT_NO_FATAL_FAILURE(MakeSourceNic());
    Result<Netlink> netlink = Netlink::Open();
    ASSERT_TRUE(netlink.ok()) << netlink.status().ToString();
    const MacAddress stranger = ParseMac("02:fe:0a:64:00:99").value();
    Status unknown = ApplyNetworkIdentity(*netlink, NewIdentity(), &stranger);
    EXPECT_EQ(unknown.code(), ErrorCode::kNotFound) << unknown.ToString();
    EXPECT_NE(unknown.message().find("02:fe:0a:64:00:99"), std::string::npos) << unknown.message();
    EXPECT_NE(unknown.message().find("fe0 02:fe:0a:64:00:02"), std::string::npos) << unknown.message();
    // fe0 and fe1 are both candidates when no previous MAC is given.
    Status ambiguous = ApplyNetworkIdentity(*netlink, NewIdentity(), nullptr);
    EXPECT_EQ(ambiguous.code(), ErrorCode::kFailedPrecondition) << ambiguous.ToString();
    Json link = IpJson({"link", "show", "fe0"});
    ASSERT_TRUE(link.is_array() && link.size() == 1) << link;
    EXPECT_EQ(link[0]["address"], "02:fe:0a:64:00:02");
  });
  if (!why.empty()) GTEST_SKIP() << why;
}

Link LinkNamed(Netlink& netlink, const std::string& name) {
  Link found;
  Result<std::vector<Link>> links = netlink.ListLinks();
  EXPECT_TRUE(links.ok()) << links.status().ToString();
  if (links.ok()) {
    for (const Link& link : *links) {
      if (link.name == name) found = link;
    }
  }
  EXPECT_EQ(found.name, name);
  return found;
}

TEST_F(ForkagentNetworkApplyTest, NeighbourFlushDeletesLearnedEntriesAndKeepsPermanentOnes) {
  std::string why = fe::test::RunInNewNetworkNamespace([] {
    ASSERT_NO_FATAL_FAILURE(MakeSourceNic());
    Ip({"neigh", "add", "10.99.0.9", "lladdr", "02:00:00:00:00:09", "dev", "fe1", "nud", "stale"});
    ASSERT_EQ(Neighbours("fe0"), (std::vector<std::string>{"10.99.0.7", "10.99.0.8", "fd00::7"}));
    Result<Netlink> netlink = Netlink::Open();
    ASSERT_TRUE(netlink.ok()) << netlink.status().ToString();
    Status flushed = netlink->FlushNeighbours(LinkNamed(*netlink, "fe0"));
    ASSERT_TRUE(flushed.ok()) << flushed.ToString();
    EXPECT_EQ(Neighbours("fe0"), std::vector<std::string>{"10.99.0.8"});
    EXPECT_EQ(Neighbours("fe1"), std::vector<std::string>{"10.99.0.9"}) << "other links keep theirs";
  });
  if (!why.empty()) GTEST_SKIP() << why;
}

TEST_F(ForkagentNetworkApplyTest, NetlinkErrorsNameTheStepAndErrno) {
  std::string why = fe::test::RunInNewNetworkNamespace([] {
    ASSERT_NO_FATAL_FAILURE(MakeSourceNic());
    Result<Netlink> netlink = Netlink::Open();
    ASSERT_TRUE(netlink.ok()) << netlink.status().ToString();
    const Link fe0 = LinkNamed(*netlink, "fe0");
    // A gateway outside every connected subnet cannot be routed to.
    Status route = netlink->ReplaceDefaultRoute(fe0, ParseIpv4("192.0.2.1").value());
    EXPECT_FALSE(route.ok());
    EXPECT_NE(route.message().find("RTM_NEWROUTE"), std::string::npos) << route.message();
    EXPECT_NE(route.message().find("fe0"), std::string::npos) << route.message();
    EXPECT_NE(route.sys_errno(), 0) << route.message();
    EXPECT_NE(route.message().find(std::strerror(route.sys_errno())), std::string::npos) << route.message();
  });
  if (!why.empty()) GTEST_SKIP() << why;
}

}  // namespace
}  // namespace fe::hypervisor::forkagent
