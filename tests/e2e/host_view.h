// What the end-to-end test sees from the host: forkctl runs (their JSON), ping and the bridge's
// forwarding table in the test's network namespace, and the files, sockets and TAPs each hypervisor
// process holds.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace fe::e2e {

using Json = nlohmann::json;

// forkctl as a user runs it, with --socket and --json: its parsed reply, or an error carrying the
// command and what forkctl printed.
class Forkctl {
 public:
  Forkctl(std::string binary, std::string socket) : binary_(std::move(binary)), socket_(std::move(socket)) {}
  Result<Json> Run(const std::vector<std::string>& args) const;

 private:
  std::string binary_, socket_;
};

// One ICMP echo to `ipv4` answered within a few seconds (busybox ping: the guest needs busybox-static
// anyway; its output in the error otherwise).
Status Ping(const std::string& ipv4);

// The bridge's forwarding table (`bridge fdb show br BRIDGE`) has learned `mac` on port `tap`.
bool BridgeLearned(const std::string& bridge, const std::string& mac, const std::string& tap);

// Names of the network devices in this namespace.
std::vector<std::string> NetworkDevices();

// What process `pid` holds that no other hypervisor process may: the files its descriptors point at
// (not /dev, pipes or anonymous ones), the paths of its Unix sockets, and the paths and TAP names on
// its command line (path=, file=, mem-path=, ifname=, file:).
std::set<std::string> HeldResources(pid_t pid);

// Processes whose command line mentions `text`.
std::vector<pid_t> ProcessesMentioning(const std::string& text);

}  // namespace fe::e2e
