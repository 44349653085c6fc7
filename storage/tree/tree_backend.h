// Backends whose volumes are plain directories cloned by the tree cloner: "reflink" (FICLONE with a
// per-file copy fallback) and "copy" (sparse copy only).
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "base/unique_fd.h"
#include "storage/tree/directory_backend.h"
#include "storage/tree/tree_cloner.h"

namespace fe::storage::tree {

// Opens (creating if needed) the data root `root` for volumes cloned with `mode`. `reason` records
// why this backend was chosen. `filesystem_reflinks`: the root's filesystem reflinks, so even the
// copy mode's copy_file_range shares extents there (the kernel remaps instead of copying).
Result<std::unique_ptr<Backend>> OpenTreeBackend(const std::string& root, DataMode mode, std::string reason,
                                                 bool filesystem_reflinks);

}  // namespace fe::storage::tree
