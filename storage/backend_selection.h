// Choosing the backend for a data root, once, by probing (not by guessing from names).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "storage/backend.h"

namespace fe::storage {

enum class BackendChoice { kAuto, kBtrfs, kReflink, kCopy };

Result<BackendChoice> ParseBackendChoice(std::string_view text);
std::string_view BackendChoiceName(BackendChoice choice);

// Opens the backend for `root` (created if missing). kAuto probes the root's filesystem: btrfs
// subvolume snapshots on btrfs; reflink when a real FICLONE works there; otherwise copy. The backend's
// SelectionReason() says why. Forcing a backend the root cannot support is an Unsupported error at
// open time (naming the root and the probe's reason), never at the first clone.
Result<std::unique_ptr<Backend>> OpenBackend(const std::string& root, BackendChoice choice);

}  // namespace fe::storage
