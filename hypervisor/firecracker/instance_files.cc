#include "hypervisor/firecracker/instance_files.h"
#include "base/confined_dir.h"
#include "snapshot/path_rewrite.h"

#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>

#include "snapshot/guest_directory.h"

namespace fe::hypervisor::firecracker {
namespace {

using snapshot::IsBeneath;

}  // namespace

Result<InstanceFiles> FindInstanceFiles(const std::string& dir) {
  InstanceFiles files;
  files.snapshot_dir = kDefaultSnapshotDir;
  Result<snapshot::Manifest> manifest = snapshot::ReadManifest(dir);
  if (!manifest.ok()) {
    if (manifest.status().code() != ErrorCode::kNotFound) return manifest.status();
    if (IsRegularFileBeneath(dir, kBootConfigName)) files.boot_config = kBootConfigName;
    return files;
  }
  const std::string manifest_file = dir + "/manifest.json";
  if (!manifest->hypervisor.empty() && manifest->hypervisor != kKind) {
    return Status::InvalidArgument(manifest_file + ": hypervisor: '" + manifest->hypervisor + "' is not " +
                                   std::string(kKind));
  }
  if (!manifest->snapshot_dir.empty()) files.snapshot_dir = manifest->snapshot_dir;
  for (const std::string& config : manifest->PathsWith(snapshot::FileRole::kConfig)) {
    if (IsBeneath(config, files.snapshot_dir)) continue;  // forkengine's own snapshot description
    if (!files.boot_config.empty()) {
      return Status::InvalidArgument(manifest_file + ": files: two firecracker configs, '" + files.boot_config +
                                     "' and '" + config + "'");
    }
    files.boot_config = config;
  }
  return files;
}

Result<std::string> ApiSocketPath(const std::string& dir) {
  std::string path = dir + "/" + std::string(kApiSocketName);
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return Status::InvalidArgument("API socket path " + path + " is longer than a Unix socket address allows (" +
                                   std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes)");
  }
  return path;
}

}  // namespace fe::hypervisor::firecracker
