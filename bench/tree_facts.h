// Facts about a directory tree, gathered outside any timed region: the listing the floor loop
// replays, a check that a clone really reproduces its source, and how much of it shares extents.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace fe::bench {

struct TreeListing {
  std::vector<std::string> directories;  // relative to the root, parents before children
  std::vector<std::string> files;        // relative to the root, regular files only
  uint64_t logical_bytes = 0;
  uint64_t allocated_bytes = 0;
};

Result<TreeListing> ListTree(const std::string& root);

// Same relative paths, types and sizes (and permission bits if `compare_modes`), and the same bytes
// at the start of every data segment of the source (a sample: reading gigabytes per check would
// dominate the run time). Also fails when the copy allocated much more than the source, i.e. filled
// the holes.
Status CheckSameTree(const std::string& source, const std::string& copy, bool compare_modes);

struct ExtentSharing {
  uint64_t mapped_bytes = 0;  // bytes in the files' extents (holes excluded)
  uint64_t shared_bytes = 0;  // of those, in extents flagged FIEMAP_EXTENT_SHARED (reflinked)
};

// Says whether a clone shares its data with the source or copied it.
Result<ExtentSharing> MeasureSharing(const std::string& root);

// The verdict on a method's untimed warm-up run: an error when the copy differs from the source or
// cannot be measured, otherwise a note of what it did ("<what>; shares all data").
struct WarmupCheck {
  std::string error;
  std::string note;
};
WarmupCheck CheckWarmup(const std::string& source, const std::string& copy, bool compare_modes,
                        const std::string& what);

}  // namespace fe::bench
