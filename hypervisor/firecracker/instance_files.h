// Where a firecracker instance directory keeps its files.
//
//   <dir>/manifest.json          what each file is (snapshot/guest_directory.h); optional
//   <dir>/config.json            the boot config: Firecracker's --config-file JSON
//   <dir>/snapshot/vmstate       the snapshot's microVM state (binary; embeds absolute device paths)
//   <dir>/snapshot/memory        the snapshot's guest memory
//   <dir>/snapshot/devices.json  forkengine's description of the devices the state embeds
//                                (snapshot_devices.h); written by Snapshot() and PrepareFork()
//   <dir>/api.sock               the running firecracker's API socket (runtime)
//
// With a manifest, its one "config" entry outside its snapshot_dir is the boot config and its
// snapshot_dir is the snapshot. Without one, the default names above are used.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace fe::hypervisor::firecracker {

inline constexpr std::string_view kKind = "firecracker";
inline constexpr std::string_view kBinary = "firecracker";  // searched in PATH
// Not packaged by Debian 12; restores also need unshare (util-linux).
inline constexpr std::string_view kInstallHint =
    "install Firecracker: put the firecracker binary of a release "
    "(github.com/firecracker-microvm/firecracker/releases) "
    "in forkd's PATH; restores also need unshare (Debian: apt install util-linux)";
inline constexpr std::string_view kUnshareBinary = "unshare";  // util-linux, searched in PATH
inline constexpr std::string_view kApiSocketName = "api.sock";
inline constexpr std::string_view kBootConfigName = "config.json";
inline constexpr std::string_view kDefaultSnapshotDir = "snapshot";
inline constexpr std::string_view kSnapshotStateName = "vmstate";
inline constexpr std::string_view kSnapshotMemoryName = "memory";
inline constexpr std::string_view kSnapshotDevicesName = "devices.json";

struct InstanceFiles {
  std::string boot_config;   // relative to the directory; empty when there is none
  std::string snapshot_dir;  // relative; the default when the manifest names none
};

// Reads the manifest (when present) and looks for the boot config. Fails when the manifest is
// malformed, names another hypervisor or lists more than one boot config.
Result<InstanceFiles> FindInstanceFiles(const std::string& dir);

// <dir>/api.sock; InvalidArgument when the path does not fit a Unix socket address (107 bytes).
Result<std::string> ApiSocketPath(const std::string& dir);

}  // namespace fe::hypervisor::firecracker
