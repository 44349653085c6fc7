#include "storage/backend_selection.h"

#include <sys/stat.h>

#include <cerrno>

#include "storage/btrfs_backend.h"
#include "storage/tree_backend.h"

namespace fe::storage {

Result<BackendChoice> ParseBackendChoice(std::string_view text) {
  if (text == "auto") return BackendChoice::kAuto;
  if (text == "btrfs") return BackendChoice::kBtrfs;
  if (text == "reflink") return BackendChoice::kReflink;
  if (text == "copy") return BackendChoice::kCopy;
  return Status(ErrorCode::kInvalidArgument,
                "unknown storage backend '" + std::string(text) + "': expected auto, btrfs, reflink or copy");
}

std::string_view BackendChoiceName(BackendChoice choice) {
  switch (choice) {
    case BackendChoice::kAuto: return "auto";
    case BackendChoice::kBtrfs: return "btrfs";
    case BackendChoice::kReflink: return "reflink";
    case BackendChoice::kCopy: return "copy";
  }
  return "unknown";
}

Result<BackendDecision> DecideBackend(BackendChoice choice, const FilesystemProbe& probe,
                                      const std::string& root) {
  const bool btrfs = probe.filesystem == "btrfs";
  switch (choice) {
    case BackendChoice::kCopy:
      return BackendDecision{BackendChoice::kCopy, "copy forced by configuration"};
    case BackendChoice::kBtrfs:
      if (!btrfs) {
        return Status(ErrorCode::kUnsupported, "storage backend btrfs needs a btrfs data root; " + root +
                                                   " is on " + probe.filesystem);
      }
      return BackendDecision{BackendChoice::kBtrfs, "btrfs forced by configuration: every clone of a subvolume is a snapshot"};
    case BackendChoice::kReflink:
      if (!probe.reflink) {
        return Status(ErrorCode::kUnsupported,
                      "storage backend reflink is not available on data root " + root + ": " + probe.reason);
      }
      return BackendDecision{BackendChoice::kReflink, "reflink forced by configuration (" + probe.reason + ")"};
    case BackendChoice::kAuto:
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
  if (::mkdir(root.c_str(), 0711) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "create data root", root);
  }
  Result<FilesystemProbe> probe = ProbeFilesystem(root);
  if (!probe.ok()) return probe.status().Annotate("probing data root " + root);
  Result<BackendDecision> decision = DecideBackend(choice, *probe, root);
  if (!decision.ok()) return decision.status();
  switch (decision->backend) {
    case BackendChoice::kBtrfs: {
      size_t crossover = choice == BackendChoice::kAuto ? kBtrfsSnapshotCrossoverEntries : 0;
      Result<std::unique_ptr<BtrfsBackend>> btrfs = BtrfsBackend::Open(root, decision->reason, crossover);
      if (!btrfs.ok()) return btrfs.status();
      return std::unique_ptr<Backend>(std::move(*btrfs));
    }
    case BackendChoice::kReflink: return OpenTreeBackend(root, DataMode::kReflink, decision->reason);
    default: return OpenTreeBackend(root, DataMode::kCopy, decision->reason);
  }
}

}  // namespace fe::storage
