// Where a cloud-hypervisor instance directory keeps its files.
//
//   <dir>/manifest.json         what each file is (snapshot/guest_directory.h); optional
//   <dir>/config.json           the boot config: a VmConfig JSON, the API's vm.create body
//   <dir>/snapshot/             what vm.snapshot writes: config.json (the VmConfig), state.json
//                               (device state) and memory-ranges (guest memory)
//   <dir>/api.sock              the running cloud-hypervisor's API socket (runtime)
//
// With a manifest, its "config" entries are the VmConfig files (those beneath its snapshot_dir are
// snapshot configs, the others boot configs) and its snapshot_dir is the snapshot. Without one, the
// default names above are used.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/confined_dir.h"
#include "base/status.h"
#include "snapshot/guest_directory.h"

namespace fe::hypervisor::cloud_hypervisor {

inline constexpr std::string_view kKind = "cloud-hypervisor";
inline constexpr std::string_view kBinary = "cloud-hypervisor";  // searched in PATH
// Not packaged by Debian 12.
inline constexpr std::string_view kInstallHint =
    "install Cloud Hypervisor: put the static cloud-hypervisor binary of a release "
    "(github.com/cloud-hypervisor/cloud-hypervisor/releases) in forkd's PATH";
inline constexpr std::string_view kApiSocketName = "api.sock";
inline constexpr std::string_view kBootConfigName = "config.json";
inline constexpr std::string_view kDefaultSnapshotDir = "snapshot";
// Names cloud-hypervisor itself gives the files of a snapshot directory.
inline constexpr std::string_view kSnapshotConfigName = "config.json";
inline constexpr std::string_view kSnapshotStateName = "state.json";
inline constexpr std::string_view kSnapshotMemoryName = "memory-ranges";

struct InstanceFiles {
  std::vector<std::string> boot_configs;      // relative to the directory; present files only
  std::vector<std::string> snapshot_configs;  // likewise
  std::string snapshot_dir;                   // relative; empty when there is no snapshot
  std::optional<snapshot::Manifest> manifest;
};

// Reads the manifest (when present) and looks for the configs. Fails when the manifest is malformed
// or names another hypervisor.
Result<InstanceFiles> FindInstanceFiles(const ConfinedDir& dir);
Result<InstanceFiles> FindInstanceFiles(const std::string& dir);

std::string ApiSocketPath(const std::string& dir);

}  // namespace fe::hypervisor::cloud_hypervisor
