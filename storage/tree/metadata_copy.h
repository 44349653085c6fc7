// Carrying an inode's metadata over to its clone: owner, mode, xattrs, atime/mtime (ns).
#pragma once

#include <sys/stat.h>

#include <string_view>

#include "base/status.h"

namespace fe::storage::tree {

// What the process creates new inodes with, so unchanged metadata costs no syscall.
struct CreationDefaults {
  uid_t uid;
  gid_t gid;
  mode_t umask;
  bool privileged;  // may chown to anyone and open any file with O_NOATIME

  static const CreationDefaults& Current();
  // The mode an inode created with `requested` ends up with.
  mode_t Created(mode_t requested) const { return requested & ~umask; }
};

// Directories are created owner-writable so they can be filled; their final mode comes last.
constexpr mode_t kNewDirectoryMode = 0700;
// Files are created with their final permission bits (set-id bits only after chown), which saves a
// chmod per file in the common case.
inline mode_t NewFileMode(mode_t source_mode) { return source_mode & 0777; }

// Applies `source`'s owner, permission bits, xattrs and timestamps to `target_fd`, in the order that
// keeps each one (chown clears set-id bits, so mode follows it; times come last). Xattrs are read
// from `source_fd`. Unprivileged callers keep their own ownership where chown is refused.
// `created_mode` is the mode target_fd was created with, umask applied.
Status CopyMetadata(int source_fd, int target_fd, const struct statx& source, mode_t created_mode,
                    std::string_view display);

}  // namespace fe::storage::tree
