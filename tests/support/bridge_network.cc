#include "tests/support/bridge_network.h"

#include <unistd.h>

#include "base/process.h"

namespace fe::test {
namespace {

constexpr char kBridge[] = "fe-tbr0";
constexpr char kSubnet[] = "10.250.77.";  // .1 the bridge, .10 + i host i
constexpr int kMaxHosts = 8;

Status Ip(std::vector<std::string> args) {
  args.insert(args.begin(), "ip");
  return RunProcessChecked(args);
}

}  // namespace

std::string BridgeNetwork::Namespace(int host) { return "fe-thost" + std::to_string(host); }
std::string BridgeNetwork::HostSideLink(int host) { return "fe-tveth" + std::to_string(host); }
std::string BridgeNetwork::BridgeAddress() const { return std::string(kSubnet) + "1"; }
std::string BridgeNetwork::Address(int host) const { return kSubnet + std::to_string(10 + host); }

std::vector<std::string> BridgeNetwork::Exec(int host) const { return {"ip", "netns", "exec", Namespace(host)}; }

void BridgeNetwork::RemoveLeftovers() {
  for (int host = 0; host < kMaxHosts; ++host) {
    (void)RunProcess({"ip", "netns", "delete", Namespace(host)});
    (void)RunProcess({"ip", "link", "delete", HostSideLink(host)});
  }
  (void)RunProcess({"ip", "link", "delete", kBridge});
}

Result<std::unique_ptr<BridgeNetwork>> BridgeNetwork::Create(int hosts) {
  if (hosts < 1 || hosts > kMaxHosts) return Status::InvalidArgument("BridgeNetwork: 1..8 hosts");
  if (::geteuid() != 0) return Status::Unsupported("network namespaces need root");
  if (::access("/usr/sbin/ip", X_OK) != 0 && ::access("/sbin/ip", X_OK) != 0 && ::access("/usr/bin/ip", X_OK) != 0) {
    return Status::Unsupported("no ip (iproute2)");
  }
  RemoveLeftovers();
  std::unique_ptr<BridgeNetwork> network(new BridgeNetwork());
  FE_RETURN_IF_ERROR(Ip({"link", "add", kBridge, "type", "bridge"}));
  FE_RETURN_IF_ERROR(Ip({"addr", "add", network->BridgeAddress() + "/24", "dev", kBridge}));
  FE_RETURN_IF_ERROR(Ip({"link", "set", kBridge, "up"}));
  for (int host = 0; host < hosts; ++host) {
    const std::string ns = network->Namespace(host);
    const std::string outside = network->HostSideLink(host);
    FE_RETURN_IF_ERROR(Ip({"netns", "add", ns}));
    FE_RETURN_IF_ERROR(Ip({"link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns}));
    FE_RETURN_IF_ERROR(Ip({"link", "set", outside, "master", kBridge}));
    FE_RETURN_IF_ERROR(Ip({"link", "set", outside, "up"}));
    FE_RETURN_IF_ERROR(Ip({"-n", ns, "addr", "add", network->Address(host) + "/24", "dev", "eth0"}));
    FE_RETURN_IF_ERROR(Ip({"-n", ns, "link", "set", "eth0", "up"}));
    FE_RETURN_IF_ERROR(Ip({"-n", ns, "link", "set", "lo", "up"}));
  }
  return network;
}

BridgeNetwork::~BridgeNetwork() { RemoveLeftovers(); }

Status BridgeNetwork::Partition(int host) { return Ip({"link", "set", HostSideLink(host), "down"}); }
Status BridgeNetwork::Heal(int host) { return Ip({"link", "set", HostSideLink(host), "up"}); }

}  // namespace fe::test
