// Hosts of a test cluster on one machine: a bridge on the host with an address of its own, and for
// each host a named network namespace joined to the bridge by a veth pair, with an address on the
// bridge's subnet. A process started through Exec(host) lives in that host's namespace: it reaches
// the bridge's address (where the test's etcd listens) and the other hosts, and the test reaches it.
// Partition(host) takes the host's link down (it can reach nobody and nobody it), Heal brings it back.
//
// One at a time per machine (fixed names; the tests hold a ctest RESOURCE_LOCK): Create removes what
// a crashed run left. The destructor deletes the namespaces and the bridge.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"

namespace fe::test {

class BridgeNetwork {
 public:
  // Unsupported (a reason to skip) when `ip` or network namespaces are not available.
  static Result<std::unique_ptr<BridgeNetwork>> Create(int hosts);
  ~BridgeNetwork();
  BridgeNetwork(const BridgeNetwork&) = delete;
  BridgeNetwork& operator=(const BridgeNetwork&) = delete;

  // The bridge's address, reachable from every host.
  std::string BridgeAddress() const;
  // Host `host`'s address (0-based).
  std::string Address(int host) const;
  // The argv prefix that runs a program in host `host`'s namespace ("ip netns exec NAME").
  std::vector<std::string> Exec(int host) const;
  Status Partition(int host);
  Status Heal(int host);

 private:
  BridgeNetwork() = default;
  static void RemoveLeftovers();
  static std::string Namespace(int host);
  static std::string HostSideLink(int host);
};

}  // namespace fe::test
