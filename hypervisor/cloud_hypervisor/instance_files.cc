#include "hypervisor/cloud_hypervisor/instance_files.h"
#include "base/confined_dir.h"
#include "snapshot/path_rewrite.h"

#include <sys/stat.h>

#include <cerrno>

namespace fe::hypervisor::cloud_hypervisor {
namespace {

using snapshot::IsBeneath;

// Appends `relative` to `out` when it is a regular file in `dir`.
Status AddIfPresent(const std::string& dir, const std::string& relative, std::vector<std::string>& out) {
  // Beneath the directory only: a config reached through a symlink is no config of this instance.
  if (IsRegularFileBeneath(dir, relative)) out.push_back(relative);
  return Status::Ok();
}

}  // namespace

Result<InstanceFiles> FindInstanceFiles(const std::string& dir) {
  InstanceFiles files;
  Result<snapshot::Manifest> manifest = snapshot::ReadManifest(dir);
  if (!manifest.ok() && manifest.status().code() != ErrorCode::kNotFound) return manifest.status();
  if (!manifest.ok()) {
    FE_RETURN_IF_ERROR(AddIfPresent(dir, std::string(kBootConfigName), files.boot_configs));
    std::string snapshot_config = std::string(kDefaultSnapshotDir) + "/" + std::string(kSnapshotConfigName);
    FE_RETURN_IF_ERROR(AddIfPresent(dir, snapshot_config, files.snapshot_configs));
    if (!files.snapshot_configs.empty()) files.snapshot_dir = kDefaultSnapshotDir;
    return files;
  }
  if (!manifest->hypervisor.empty() && manifest->hypervisor != kKind) {
    return Status::InvalidArgument(dir + "/manifest.json: hypervisor: '" + manifest->hypervisor + "' is not " +
                                   std::string(kKind));
  }
  files.snapshot_dir = manifest->snapshot_dir;
  for (const std::string& config : manifest->PathsWith(snapshot::FileRole::kConfig)) {
    bool in_snapshot = IsBeneath(config, files.snapshot_dir);
    FE_RETURN_IF_ERROR(AddIfPresent(dir, config, in_snapshot ? files.snapshot_configs : files.boot_configs));
  }
  files.manifest = std::move(*manifest);
  return files;
}

std::string ApiSocketPath(const std::string& dir) { return dir + "/" + std::string(kApiSocketName); }

}  // namespace fe::hypervisor::cloud_hypervisor
