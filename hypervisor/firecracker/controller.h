// The effectful half of the firecracker plugin: a VmController speaking Firecracker's API.
//
//   Pause/Resume   PATCH /vm {"state": "Paused" | "Resumed"}
//   Snapshot(dir)  PUT /snapshot/create {"snapshot_type": "Full", "snapshot_path": "<dir>/vmstate",
//                  "mem_file_path": "<dir>/memory"}, then GET /vm/config to write <dir>/devices.json
//                  (snapshot_devices.h). The VM must be paused.
//   Restore(dir)   PUT /snapshot/load {"snapshot_path", "mem_backend": {"backend_type": "File",
//                  "backend_path": <dir>/memory, or a shared-memory fork's template file (MemorySource:
//                  firecracker maps it MAP_PRIVATE, so forks share its pages and never write it)},
//                  "resume_vm": false, "network_overrides": [{"iface_id", "host_dev_name"}],
//                  "vsock_override": {"uds_path"}}; for a fork (devices.json has a source_alias) the
//                  load runs inside the temporary source-path alias (source_alias.h), and afterwards
//                  each drive that was opened through the alias is re-pointed at the fork's own path
//                  (PATCH /drives/<id> {"path_on_host"}) so nothing of the fork refers to the source
//                  directory any more: its own later snapshots embed only its own paths. The VM is
//                  left paused: the caller sets up the host side and then calls Resume().
//   Shutdown       PUT /actions {"action_type": "SendCtrlAltDel"} (the guest reboots, and firecracker
//                  exits on a guest reboot), then SIGKILL through a pidfd if it has not exited in time.
//
// Versions. network_overrides needs Firecracker 1.12, vsock_override 1.16; Restore asks GET /version
// first and refuses (Unsupported, before anything is changed) a load that needs a newer one. Without
// vsock_override a fork's vsock device would keep the source's socket path once the alias is gone,
// and its guest-initiated connections would reach the source's listeners.
//
// Connect() learns the firecracker process from the API socket's peer credentials (SO_PEERCRED) and
// holds a pidfd to it: Restore enters its mount namespace for the alias, Shutdown signals it.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "hypervisor/firecracker/json_util.h"
#include "hypervisor/firecracker/snapshot_devices.h"
#include "hypervisor/firecracker/source_alias.h"
#include "hypervisor/plugin.h"

namespace fe::hypervisor::firecracker {

struct ControllerOptions {
  std::chrono::milliseconds request_timeout{10000};                      // small requests
  std::chrono::milliseconds snapshot_timeout{std::chrono::minutes(10)};  // snapshot create and load
  std::chrono::milliseconds shutdown_timeout{10000};                     // grace after Ctrl+Alt+Del before SIGKILL
  AliasOptions alias;
};

struct FirecrackerVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;
  bool AtLeast(int want_major, int want_minor) const {
    return major > want_major || (major == want_major && minor >= want_minor);
  }
  std::string ToString() const;
};

// "1.16.0", "v1.12.1-dev" -> version; InvalidArgument otherwise.
Result<FirecrackerVersion> ParseFirecrackerVersion(std::string_view text);

// What Restore() does for one snapshot: pure, so it can be tested without a firecracker.
struct LoadPlan {
  Json request;                                              // the PUT /snapshot/load body
  std::optional<PathAlias> alias;                            // held during the load
  std::vector<std::pair<std::string, std::string>> repoint;  // drive id -> the fork's path, after the load
};
// `devices` is the snapshot's devices.json (nullopt when it has none); `memory` the file guest RAM is
// mapped from when not the snapshot's own.
Result<LoadPlan> PlanSnapshotLoad(const std::string& snapshot_dir, const std::optional<SnapshotDevices>& devices,
                                  const NetworkIdentity& identity, const FirecrackerVersion& version,
                                  const MemorySource& memory = {});

// Waits (up to `timeout`) for `api_socket` to accept a connection and returns a controller of the
// firecracker process behind it.
Result<std::unique_ptr<VmController>> ConnectFirecracker(const std::string& api_socket,
                                                         std::chrono::milliseconds timeout,
                                                         ControllerOptions options = {});

}  // namespace fe::hypervisor::firecracker
