#include "storage/registry/backend_selection.h"

#include <dirent.h>

#include <sys/stat.h>

#include <cerrno>

#include "storage/dm_thin/dm_thin_device.h"
#include "storage/registry/backend_registry.h"

namespace fe::storage::registry {

Result<std::string> ParseBackendChoice(std::string_view text) {
  if (text == kAutoBackend || FindBackend(text) != nullptr) return std::string(text);
  std::string names(kAutoBackend);
  for (const BackendEntry& entry : RegisteredBackends()) names += ", " + std::string(entry.name);
  return Status::InvalidArgument("unknown storage backend '" + std::string(text) + "': expected one of " + names);
}

Result<BackendDecision> DecideBackend(std::string_view choice, const tree::FilesystemProbe& probe,
                                      const HostFacts& host, const std::string& root) {
  if (choice != kAutoBackend) {
    const BackendEntry* entry = FindBackend(choice);
    if (entry == nullptr) return ParseBackendChoice(choice).status();
    FE_ASSIGN_OR_RETURN(std::optional<std::string> reason,
                        entry->probe(SelectionContext{.root = root, .probe = probe, .host = host, .forced = true}));
    return BackendDecision{.backend = std::string(entry->name), .reason = std::move(*reason), .forced = true};
  }
  for (const BackendEntry& entry : RegisteredBackends()) {
    FE_ASSIGN_OR_RETURN(std::optional<std::string> reason,
                        entry.probe(SelectionContext{.root = root, .probe = probe, .host = host, .forced = false}));
    if (reason)
      return BackendDecision{.backend = std::string(entry.name), .reason = std::move(*reason), .forced = false};
  }
  return Status::Internal("no storage backend applies to " + root + " (the last row must always apply)");
}

HostFacts ProbeHost(const std::string& root, bool thin_pool_configured) {
  HostFacts host;
  host.thin_pool_configured = thin_pool_configured;
  host.device_mapper = dm_thin::DeviceMapperAvailable(&host.device_mapper_reason);
  host.root_free_for_thin = true;
  if (DIR* dir = ::opendir(root.c_str())) {
    while (const dirent* entry = ::readdir(dir)) {
      const std::string_view name = entry->d_name;
      if (name == "." || name == ".." || name == kCalibrationDirectory) continue;
      if (name == ".dm-thin") {
        host.root_free_for_thin = true;
        break;
      }
      host.root_free_for_thin = false;
    }
    ::closedir(dir);
  }
  return host;
}

bool AutoPicksDmThin(const std::string& root) {
  if (::mkdir(root.c_str(), 0711) != 0 && errno != EEXIST) return false;
  Result<tree::FilesystemProbe> probe = tree::ProbeFilesystem(root);
  if (!probe.ok()) return false;
  Result<BackendDecision> decision = DecideBackend(kAutoBackend, *probe, ProbeHost(root, false), root);
  return decision.ok() && decision->backend == "dm-thin";
}

Result<std::unique_ptr<Backend>> OpenBackend(const std::string& root, std::string_view choice) {
  StorageConfig config;
  config.root = root;
  config.backend = std::string(choice);
  return OpenBackend(config);
}

Result<std::unique_ptr<Backend>> OpenBackend(const StorageConfig& config) {
  const std::string& root = config.root;
  if (::mkdir(root.c_str(), 0711) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "create data root", root);
  }
  Result<tree::FilesystemProbe> probe = tree::ProbeFilesystem(root);
  if (!probe.ok()) return probe.status().Annotate("probing data root " + root);
  const HostFacts host = ProbeHost(root, config.thin_pool.has_value());
  FE_ASSIGN_OR_RETURN(BackendDecision decision, DecideBackend(config.backend, *probe, host, root));
  return FindBackend(decision.backend)->open(config, *probe, decision);
}

}  // namespace fe::storage::registry
