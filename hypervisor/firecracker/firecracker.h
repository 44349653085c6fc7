// The firecracker plugin (see hypervisor/plugin.h for the contract).
//
// Stopped forks: config.json (Firecracker's --config-file JSON) is rewritten for the fork
// (config_rewrite.h) and the fork boots from it.
//
// Standby forks: Firecracker's snapshot state (snapshot/vmstate) is binary and embeds the absolute
// device paths of the directory it was taken in, so it is never rewritten. Instead PrepareFork records
// in snapshot/devices.json (snapshot_devices.h) which devices the state holds and that, while it is
// loaded, the source directory must resolve to the fork's (RestorePlan::needs_source_path_alias).
// Restore then loads it with
//  - a temporary alias of the source path to the fork's directory that exists only in the fork's own
//    firecracker's mount namespace (one-way, slave propagation), under a per-source lock (source_alias.h: the
//    mechanism, the lock and crash recovery), removed right after the load on every path;
//  - the snapshot-load API's overrides: network_overrides binds the fork's own TAP, vsock_override
//    its own vsock socket;
//  - each drive opened through the alias re-pointed at the fork's path afterwards (PATCH /drives),
// so once restored the fork holds nothing of the source (controller.h). Its guest still holds the
// source's MAC, IP and vsock CID in memory: the new identity reaches it after Resume() through the
// guest agent (hypervisor/identity_handoff.h) over the fork's vsock socket.
//
// Requirements: Firecracker >= 1.12 for a restore with another TAP, >= 1.16 when the snapshot has a
// vsock device; `unshare` (util-linux) and CAP_SYS_ADMIN for the alias.
#pragma once

#include "hypervisor/plugin.h"

namespace fe::hypervisor::firecracker {

// The process-wide firecracker plugin.
const Plugin& FirecrackerPlugin();

}  // namespace fe::hypervisor::firecracker
