// The physical floor of a reflink tree clone: the syscalls no clone can avoid, and nothing else.
#pragma once

#include <chrono>
#include <string>

#include "base/status.h"
#include "bench/tree_facts.h"

namespace fe::bench {

// Recreates `listing` (taken from `source` beforehand, so the walk is not timed) at `target` with a
// sequential loop of mkdir, and per file open(source) + open(target, O_CREAT) + ioctl(FICLONE) +
// close. No metadata work (owner, mode, times, xattrs), no fsync, no temporary name and rename.
// Returns the time of the loop; fails if any FICLONE is refused.
Result<std::chrono::nanoseconds> FloorClone(const std::string& source, const TreeListing& listing,
                                            const std::string& target);

}  // namespace fe::bench
