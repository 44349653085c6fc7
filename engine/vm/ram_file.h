// Laying out a VM's RAM file before it boots, so that clones of it stay cheap.
//
// Why. A live fork clones the source's RAM file while the source is paused (engine/live_fork.cc), and
// a reflink clone costs per extent (~32 us each on XFS), not per byte. A RAM file that QEMU creates
// sparse and a booted guest then fills at random ends with one extent per run of written pages: tens
// of thousands for 1 GiB, and a pause of several hundred ms however little is dirty. A file written in
// full before the VMM maps it is one extent that the guest overwrites in place.
//
// What. A boot does not need the file's old content (the guest starts afresh), so a file that is not
// laid out yet is replaced: a temporary file beside it ("<name>.tmp-XXXXXX", removed by recovery after
// a crash) is written with zeros to the guest's RAM size, written back (no device flush) and renamed
// over it. A file that is already allocated in full in at most kLaidOutExtents extents is left alone.
// Everything resolves beneath the instance's volume (base/confined_dir.h): the path comes from the
// guest's config. Costs: the file takes its whole size on disk from the first boot, and that boot
// writes it once.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "hypervisor/plugin.h"

namespace fe::engine::vm {

inline constexpr uint64_t kLaidOutExtents = 64;

// Whether it replaced the file (false: it was laid out already).
Result<bool> LayOutRamFileForBoot(const std::string& guest_dir, const hypervisor::MemoryFile& file);

// The number of extents of the open file `fd` (FIEMAP); errors name `display`.
Result<uint64_t> ExtentCount(int fd, const std::string& display);

}  // namespace fe::engine::vm
