// The embedded default pool: when the data root's filesystem cannot reflink, forkd keeps the
// volumes on a loop-mounted XFS image (sparse; <data_root>/pool.img) mounted at <data_root>/volumes,
// the way LXD makes its default loop-backed pool, so forks share data instead of copying it.
//
// forkd mounts the pool before opening the engine and does NOT unmount it when it exits: Running VMs
// keep their disks and memory files open on it across daemon restarts and upgrades (their processes
// outlive forkd), and the next forkd finds the mount point in place and reuses it. The image is
// kept; the loop device is attached with autoclear, so it detaches when someone unmounts the pool.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"

namespace fe::storage::loop {

enum class LoopPoolMode { kNone, kAuto };

Result<LoopPoolMode> ParseLoopPoolMode(const std::string& text);
// "8G", "512M", "1T", "4096" (bytes) -> bytes.
Result<uint64_t> ParseSize(const std::string& text);

// With kAuto: reuses `volumes` when it already is a mount point; else, when that directory cannot
// reflink, is empty, and loop filesystems are available, mounts the pool there from the sparse image
// `image` (made when missing). Returns one line for the log saying what it did and why. The parent
// of `volumes` must exist.
Result<std::string> PrepareLoopPool(const std::string& volumes, const std::string& image, LoopPoolMode mode,
                                    uint64_t size_bytes);

}  // namespace fe::storage::loop
