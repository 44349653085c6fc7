// Subvolume primitives on open directories, shared by the btrfs backend (volumes under its root) and
// `forkctl clone` (any two paths on one btrfs filesystem).
#pragma once

#include <btrfsutil.h>

#include <string>
#include <string_view>

#include "base/status.h"
#include "storage/clone_report.h"

namespace fe::storage::btrfs {

// libbtrfsutil's `error` with the errno it set, naming the operation and the path.
Status BtrfsError(btrfs_util_error error, std::string_view operation, std::string_view path);

// Whether the directory `dir_fd` is the root of a btrfs subvolume: false for a plain directory and
// on any other filesystem.
Result<bool> IsSubvolumeRoot(int dir_fd, std::string_view display);

// Snapshots the subvolume `source_fd` as `name` in `target_parent_fd`: writable with its nested
// subvolumes, or read-only (btrfs cannot take nested ones read-only). The snapshot appears whole or
// not at all. AlreadyExists when `name` is taken; EXDEV's error when the two are on different
// filesystems. `target_display` names the snapshot in errors.
Result<CloneReport> SnapshotSubvolume(int source_fd, int target_parent_fd, const std::string& name, bool read_only,
                                      std::string_view target_display);

}  // namespace fe::storage::btrfs
