// Probing decides by trying: statfs names the filesystem, a real FICLONE of a scratch file says
// whether reflink works there.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace fe::storage::tree {

struct FilesystemProbe {
  std::string filesystem;  // "xfs", "btrfs", "ext4", ... or "0x<magic>"
  uint64_t magic = 0;
  bool reflink = false;
  std::string reason;  // why reflink does or does not work, e.g. "FICLONE: Operation not supported"
  bool full = false;   // no room to write the probe's data (ENOSPC/EDQUOT): decided without it
};

// Probes the filesystem holding directory `dir_fd` by creating, cloning and removing two scratch
// files in it (O_TMPFILE when possible, so nothing is visible even after a crash). On a full
// filesystem it still answers (`full`): an empty scratch file is cloned, or, with no room for a file
// at all, the filesystem type decides.
Result<FilesystemProbe> ProbeFilesystem(int dir_fd);
// As above; `dir` only names the directory in messages.
Result<FilesystemProbe> ProbeFilesystem(int dir_fd, const std::string& dir);
Result<FilesystemProbe> ProbeFilesystem(const std::string& dir);

std::string FilesystemName(uint64_t magic);

}  // namespace fe::storage::tree
