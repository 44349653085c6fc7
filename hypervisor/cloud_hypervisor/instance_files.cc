#include "hypervisor/cloud_hypervisor/instance_files.h"
#include "base/confined_dir.h"
#include "snapshot/path_rewrite.h"

namespace fe::hypervisor::cloud_hypervisor {

Result<InstanceFiles> FindInstanceFiles(const ConfinedDir& dir) {
  // Present files only, and beneath the directory only: a config reached through a symlink is no
  // config of this instance.
  auto add_if_present = [&dir](const std::string& relative, std::vector<std::string>& out) {
    if (dir.IsRegularFile(relative)) out.push_back(relative);
  };
  InstanceFiles files;
  Result<snapshot::Manifest> manifest = snapshot::ReadManifest(dir);
  if (!manifest.ok() && manifest.status().code() != ErrorCode::kNotFound) return manifest.status();
  if (!manifest.ok()) {
    add_if_present(std::string(kBootConfigName), files.boot_configs);
    add_if_present(std::string(kDefaultSnapshotDir) + "/" + std::string(kSnapshotConfigName), files.snapshot_configs);
    if (!files.snapshot_configs.empty()) files.snapshot_dir = kDefaultSnapshotDir;
    return files;
  }
  if (!manifest->hypervisor.empty() && manifest->hypervisor != kKind) {
    return Status::InvalidArgument(dir.PathOf("manifest.json") + ": hypervisor: '" + manifest->hypervisor +
                                   "' is not " + std::string(kKind));
  }
  files.snapshot_dir = manifest->snapshot_dir;
  for (const std::string& config : manifest->PathsWith(snapshot::FileRole::kConfig)) {
    add_if_present(config,
                   snapshot::IsBeneath(config, files.snapshot_dir) ? files.snapshot_configs : files.boot_configs);
  }
  files.manifest = std::move(*manifest);
  return files;
}

Result<InstanceFiles> FindInstanceFiles(const std::string& dir) {
  FE_ASSIGN_OR_RETURN(ConfinedDir confined, ConfinedDir::Open(dir));
  return FindInstanceFiles(confined);
}

std::string ApiSocketPath(const std::string& dir) { return dir + "/" + std::string(kApiSocketName); }

}  // namespace fe::hypervisor::cloud_hypervisor
