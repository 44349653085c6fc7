// Carrying an inode's metadata over to its clone: owner, mode, xattrs, atime/mtime (ns).
#pragma once

#include <sys/stat.h>

#include <string_view>

#include "base/status.h"

namespace fe::storage {

// What the process creates new inodes with, so unchanged metadata costs no syscall.
struct CreationDefaults {
  uid_t uid;
  gid_t gid;
  mode_t file_mode;       // mode a file created with 0600 ends up with (umask applied)
  mode_t directory_mode;  // same for a directory created with 0700
  bool privileged;        // may chown to anyone and open any file with O_NOATIME

  static const CreationDefaults& Current();
};

constexpr mode_t kNewFileMode = 0600;
constexpr mode_t kNewDirectoryMode = 0700;

// Applies `source`'s owner, permission bits, xattrs and timestamps to `target_fd`, in the order that
// keeps each one (chown clears set-id bits, so mode follows it; times come last). Xattrs are read
// from `source_fd`. Unprivileged callers keep their own ownership where chown is refused.
Status CopyMetadata(int source_fd, int target_fd, const struct statx& source, bool is_directory,
                    std::string_view display);

}  // namespace fe::storage
