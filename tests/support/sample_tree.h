// A small tree shaped like an instance's volume: a sparse disk image, a memory file larger than the
// cloner's "large file" threshold, small state files, nested directories, symlinks (relative,
// dangling, absolute to /etc), a hard link pair and xattrs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/status.h"

namespace fe::test {

struct SampleTree {
  // What a clone report should count for this tree.
  uint64_t files = 0;        // inodes of regular files
  uint64_t directories = 0;  // including the root
  uint64_t symlinks = 0;
  uint64_t hardlinks = 0;  // extra names
  uint64_t logical_bytes = 0;
  uint64_t data_bytes = 0;  // allocated data (holes excluded)
};

// Creates the tree at `root`, which must not exist. `seed` varies the file contents.
Result<SampleTree> MakeSampleTree(const std::string& root, uint64_t seed = 1);

// Sets atime and mtime (ns since the epoch) without following a final symlink.
Status SetTimes(const std::string& path, int64_t atime_ns, int64_t mtime_ns);
Status SetXattr(const std::string& path, const std::string& name, const std::string& value);

}  // namespace fe::test
