// What a guest directory may hold, checked before it is imported and again on the volume it became:
// nothing in it may lead out of the volume it is cloned into, and nothing in it may be a door to the
// host.
//
// The tree is walked beneath `dir` (base/confined_dir.h), never following a link. Refused with
// InvalidContent naming the path (and, for a link, its target):
//  - a symlink whose target is absolute, empty, or has a ".." component: once cloned it would point
//    out of the volume (at /etc/shadow, the host's root disk, another instance's volume). A relative
//    link that only goes down cannot leave the directory, whatever the links it meets;
//  - a block or character device (a volume holding one is a door to the host's devices) and a FIFO
//    (a reader of it would block).
// Sockets pass: they are runtime endpoints that the clone leaves out (storage/tree skips them).
// A tree of more than kMaxGuestTreeEntries entries or deeper than kMaxGuestTreeDepth is refused
// rather than walked: guest directories hold tens of files.
#pragma once

#include <cstddef>

#include "base/confined_dir.h"
#include "base/status.h"

namespace fe::snapshot {

inline constexpr size_t kMaxGuestTreeEntries = 100'000;
inline constexpr size_t kMaxGuestTreeDepth = 64;

Status CheckGuestTree(const ConfinedDir& dir);

// Whether a symlink with this target stays inside the directory holding it (relative, downward only).
bool IsContainedLinkTarget(std::string_view target);

}  // namespace fe::snapshot
