// What a Firecracker snapshot's binary state embeds, in a file forkengine can read:
// <snapshot dir>/devices.json.
//
// Firecracker's vmstate file is a binary serialization holding, among the device state, the absolute
// paths and names the devices were configured with: drive files, TAP names, the vsock socket. It
// cannot be rewritten safely, so a fork is restored with those values as they are (see
// firecracker.h for how). This file records them so a fork can be planned without parsing vmstate:
//
//   {"version": 1,
//    "drives": [{"drive_id": "rootfs", "path_on_host": "/data/vm-1/rootfs.ext4", "is_read_only": false}],
//    "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "fe0a000002", "guest_mac": "02:..."}],
//    "pmem": [{"id": "p0", "path_on_host": "/images/base.img", "read_only": true}],
//    "vsock": {"uds_path": "/data/vm-1/vsock.sock", "guest_cid": 167772162},
//    "source_alias": {"from": "/data/vm-1", "to": "/data/vm-2"}}
//
// The device lists use the key names of Firecracker's config and of GET /vm/config, so one parser
// reads all three. Snapshot() writes the file from GET /vm/config after PUT /snapshot/create, so it
// describes exactly what the state holds. PrepareFork() adds "source_alias": while this snapshot is
// loaded, "from" (the directory the embedded paths live in) must resolve to "to" (the fork's own
// directory). A snapshot without this file (not made by forkengine) is described from the instance's
// config instead. Unknown fields survive a rewrite.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "hypervisor/firecracker/json_util.h"

namespace fe::hypervisor::firecracker {

struct DriveDevice {
  std::string drive_id;
  std::string path_on_host;  // empty for a vhost-user drive
  std::string socket;        // vhost-user backend socket, else empty
  bool read_only = false;
};

struct PmemDevice {
  std::string id;
  std::string path_on_host;
  bool read_only = false;
};

struct NetDevice {
  std::string iface_id;
  std::string host_dev_name;
  std::string guest_mac;
};

struct VsockDevice {
  std::string uds_path;
  uint32_t guest_cid = 0;
};

struct PathAlias {
  std::string from;  // absolute: the directory the state's paths live in
  std::string to;    // absolute: the directory that must be seen there while loading
};

struct SnapshotDevices {
  std::vector<DriveDevice> drives;
  std::vector<PmemDevice> pmem;
  std::vector<NetDevice> network_interfaces;
  std::optional<VsockDevice> vsock;
  std::optional<PathAlias> source_alias;
};

// Reads the device lists of a Firecracker config, a GET /vm/config answer or a devices.json (and its
// source_alias). Errors name `file` and the field.
Result<SnapshotDevices> ParseSnapshotDevices(const Json& document, std::string_view file);

// Encodes `devices` into `base` (the file's previous JSON, so its unknown fields survive; an empty
// object for a new file) and returns the text to write.
std::string EncodeSnapshotDevices(const SnapshotDevices& devices, Json base = Json::object());

// Reads <snapshot_dir>/devices.json. NotFound when absent.
Result<SnapshotDevices> ReadSnapshotDevices(const std::string& snapshot_dir);

}  // namespace fe::hypervisor::firecracker
