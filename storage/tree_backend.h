// Backends whose volumes are plain directories cloned by the tree cloner: "reflink" (FICLONE with a
// per-file copy fallback) and "copy" (sparse copy only).
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "storage/backend.h"
#include "storage/tree_cloner.h"

namespace fe::storage {

// Opens (creating if needed) the data root `root` for volumes cloned with `mode`. `reason` records
// why this backend was chosen.
Result<std::unique_ptr<Backend>> OpenTreeBackend(const std::string& root, DataMode mode,
                                                 std::string reason);

// Walks the tree under `dir_fd`, summing sizes, allocated blocks and (with FIEMAP) shared extents.
Result<VolumeUsage> MeasureTree(int dir_fd, const std::string& display);

}  // namespace fe::storage
