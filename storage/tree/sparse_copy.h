// The last-resort data path: copy only the data segments (SEEK_DATA/SEEK_HOLE) with
// copy_file_range, so holes stay holes; pread/pwrite where copy_file_range is refused. On a
// filesystem that reflinks (XFS, btrfs), the kernel may satisfy copy_file_range by sharing extents.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/status.h"

namespace fe::storage::tree {

// Copies `size` bytes of `source_fd` into the empty file `target_fd`, leaving holes unallocated, and
// sets the target's size. Returns the data bytes copied. `path` names the file in errors.
Result<uint64_t> SparseCopy(int source_fd, int target_fd, uint64_t size, std::string_view path);

}  // namespace fe::storage::tree
