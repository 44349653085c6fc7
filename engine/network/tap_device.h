// Host TAP devices for instances: one persistent TAP per instance, named by its network identity
// (NetworkIdentity::tap_device), made before the hypervisor opens it and removed when no VM of the
// instance runs.
//
// Persistent (TUNSETPERSIST) so the device outlives the descriptor that made it: the hypervisor
// (QEMU's `-netdev tap,ifname=...`, Cloud Hypervisor's and Firecracker's tap options) opens it by
// name later. It is brought up and, when a bridge is configured, made a port of that bridge, so the
// guest is reachable on the bridge's network. Only ioctls and rtnetlink are used: no `ip` process.
//
// Threads: any; every call works in the calling thread's network namespace.
#pragma once

#include <string>

#include "base/status.h"

namespace fe::engine::network {

// IFNAMSIZ - 1.
inline constexpr size_t kMaxTapNameBytes = 15;

// Makes `name` a persistent TAP (no packet-information header), up, and a port of `bridge` when it
// is not empty. Idempotent: an existing persistent TAP of that name that no process holds is reused
// (and brought up and attached again). InvalidArgument for a name that is empty or longer than 15
// bytes or holds '/' or whitespace; NotFound when /dev/net/tun or the bridge is missing; Busy when a
// process holds the TAP or another kind of device has the name; errno's code otherwise. On failure
// a TAP this call made is removed again.
Status CreateTap(const std::string& name, const std::string& bridge);

// Makes the existing network device `name` (a TAP a hypervisor may hold) a port of `bridge`.
// InvalidArgument for bad names; NotFound when either device is missing; errno's code otherwise.
Status JoinBridge(const std::string& name, const std::string& bridge);

// Removes the network device `name` (rtnetlink RTM_DELLINK). Ok when there is none.
Status DeleteTap(const std::string& name);

// True when a network device `name` exists (in this namespace).
bool NetworkDeviceExists(const std::string& name);

// Why TAPs cannot be made here ("/dev/net/tun: No such file or directory"), or "" when they can.
std::string TapUnavailableReason();

}  // namespace fe::engine::network
