#include "storage/registry/backend_selection.h"

#include <sys/stat.h>

#include <cerrno>

#include "storage/btrfs/btrfs_backend.h"
#include "storage/dm_thin/dm_thin_backend.h"
#include "storage/dm_thin/dm_thin_device.h"
#include "storage/tree/tree_backend.h"

namespace fe::storage {

Result<BackendChoice> ParseBackendChoice(std::string_view text) {
  if (text == "auto") return BackendChoice::kAuto;
  if (text == "dm-thin") return BackendChoice::kDmThin;
  if (text == "btrfs") return BackendChoice::kBtrfs;
  if (text == "reflink") return BackendChoice::kReflink;
  if (text == "copy") return BackendChoice::kCopy;
  return Status::InvalidArgument("unknown storage backend '" + std::string(text) + "': expected auto, dm-thin, btrfs, reflink or copy");
}

std::string_view BackendChoiceName(BackendChoice choice) {
  switch (choice) {
    case BackendChoice::kAuto: return "auto";
    case BackendChoice::kDmThin: return "dm-thin";
    case BackendChoice::kBtrfs: return "btrfs";
    case BackendChoice::kReflink: return "reflink";
    case BackendChoice::kCopy: return "copy";
  }
  return "unknown";
}

Result<BackendDecision> DecideBackend(BackendChoice choice, const FilesystemProbe& probe,
                                      const HostFacts& host, const std::string& root) {
  const bool btrfs = probe.filesystem == "btrfs";
  if (choice == BackendChoice::kDmThin || (choice == BackendChoice::kAuto && host.thin_pool_configured)) {
    if (!host.thin_pool_configured) {
      return Status::InvalidArgument("storage backend dm-thin needs a thin pool in the configuration");
    }
    if (!host.device_mapper) {
      return Status::Unsupported("storage backend dm-thin is not available on this host: " + host.device_mapper_reason);
    }
    return BackendDecision{BackendChoice::kDmThin, std::string(choice == BackendChoice::kAuto ? "auto: " : "forced: ") +
                                                       "a thin pool is configured; clones are thin snapshots"};
  }
  switch (choice) {
    case BackendChoice::kCopy:
      return BackendDecision{BackendChoice::kCopy, "copy forced by configuration"};
    case BackendChoice::kBtrfs:
      if (!btrfs) {
        return Status::Unsupported("storage backend btrfs needs a btrfs data root; " + root +
                                                   " is on " + probe.filesystem);
      }
      return BackendDecision{BackendChoice::kBtrfs, "btrfs forced by configuration: every clone of a subvolume is a snapshot"};
    case BackendChoice::kReflink:
      if (!probe.reflink) {
        return Status::Unsupported("storage backend reflink is not available on data root " + root + ": " + probe.reason);
      }
      return BackendDecision{BackendChoice::kReflink, "reflink forced by configuration (" + probe.reason + ")"};
    case BackendChoice::kAuto:
    case BackendChoice::kDmThin:
      break;
  }
  if (btrfs) {
    return BackendDecision{BackendChoice::kBtrfs,
                           "auto: data root is on btrfs: subvolumes are snapshotted, trees under " +
                               std::to_string(kBtrfsSnapshotCrossoverEntries) + " entries reflinked"};
  }
  if (probe.reflink) return BackendDecision{BackendChoice::kReflink, "auto: " + probe.reason};
  return BackendDecision{BackendChoice::kCopy, "auto: no reflink (" + probe.reason + "): sparse copy"};
}

Result<std::unique_ptr<Backend>> OpenBackend(const std::string& root, BackendChoice choice) {
  return OpenBackend(StorageConfig{.root = root, .backend = choice, .thin_pool = std::nullopt});
}

Result<std::unique_ptr<Backend>> OpenBackend(const StorageConfig& config) {
  const std::string& root = config.root;
  const BackendChoice choice = config.backend;
  if (::mkdir(root.c_str(), 0711) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "create data root", root);
  }
  Result<FilesystemProbe> probe = ProbeFilesystem(root);
  if (!probe.ok()) return probe.status().Annotate("probing data root " + root);
  HostFacts host;
  host.thin_pool_configured = config.thin_pool.has_value();
  if (host.thin_pool_configured || choice == BackendChoice::kDmThin) {
    host.device_mapper = DeviceMapperAvailable(&host.device_mapper_reason);
  }
  Result<BackendDecision> decision = DecideBackend(choice, *probe, host, root);
  if (!decision.ok()) return decision.status();
  switch (decision->backend) {
    case BackendChoice::kDmThin: {
      DmThinConfig thin = *config.thin_pool;
      thin.data_root = root;
      Result<std::unique_ptr<DmThinBackend>> backend = OpenDmThinBackend(thin);
      if (!backend.ok()) return backend.status();
      return std::unique_ptr<Backend>(std::move(*backend));
    }
    case BackendChoice::kBtrfs: {
      size_t crossover = choice == BackendChoice::kAuto ? kBtrfsSnapshotCrossoverEntries : 0;
      Result<std::unique_ptr<BtrfsBackend>> btrfs = BtrfsBackend::Open(root, decision->reason, crossover);
      if (!btrfs.ok()) return btrfs.status();
      return std::unique_ptr<Backend>(std::move(*btrfs));
    }
    case BackendChoice::kReflink: return OpenTreeBackend(root, DataMode::kReflink, decision->reason, true);
    default: return OpenTreeBackend(root, DataMode::kCopy, decision->reason, probe->reflink);
  }
}

}  // namespace fe::storage
