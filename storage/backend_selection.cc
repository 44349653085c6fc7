#include "storage/backend_selection.h"

#include <sys/stat.h>

#include <cerrno>

#include "storage/btrfs_backend.h"
#include "storage/reflink_probe.h"
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

Result<std::unique_ptr<Backend>> OpenBackend(const std::string& root, BackendChoice choice) {
  if (::mkdir(root.c_str(), 0711) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "create data root", root);
  }
  if (choice == BackendChoice::kCopy) {
    return OpenTreeBackend(root, DataMode::kCopy, "copy forced by configuration");
  }
  Result<FilesystemProbe> probe = ProbeFilesystem(root);
  if (!probe.ok()) return probe.status().Annotate("probing data root " + root);
  if (choice == BackendChoice::kBtrfs || (choice == BackendChoice::kAuto && probe->filesystem == "btrfs")) {
    std::string why = choice == BackendChoice::kAuto ? "auto: data root is on btrfs, clones are subvolume snapshots"
                                                     : "btrfs forced by configuration";
    Result<std::unique_ptr<BtrfsBackend>> btrfs = BtrfsBackend::Open(root, why);
    if (!btrfs.ok()) return btrfs.status();
    return std::unique_ptr<Backend>(std::move(*btrfs));
  }
  if (probe->reflink) {
    std::string why = (choice == BackendChoice::kAuto ? "auto: " : "forced: ") + probe->reason;
    return OpenTreeBackend(root, DataMode::kReflink, why);
  }
  if (choice == BackendChoice::kReflink) {
    return Status(ErrorCode::kUnsupported,
                  "storage backend reflink is not available on data root " + root + ": " + probe->reason);
  }
  return OpenTreeBackend(root, DataMode::kCopy, "auto: no reflink (" + probe->reason + "), sparse copy");
}

}  // namespace fe::storage
