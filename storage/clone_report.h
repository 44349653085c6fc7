// What a tree clone did: counts, bytes by mechanism, skipped entries and time per phase.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace fe::storage {

// An entry the cloner deliberately did not recreate (sockets, FIFOs, device nodes).
struct SkippedEntry {
  std::string path;    // relative to the source root
  std::string reason;  // e.g. "socket: runtime endpoint, never cloned"
};

struct PhaseTimes {
  std::chrono::nanoseconds prepare{0};  // destination checks, temporary root
  std::chrono::nanoseconds tree{0};     // walk, create, clone data, metadata (parallel)
  std::chrono::nanoseconds commit{0};   // sync where needed and rename into place
};

struct CloneReport {
  std::string mechanism;  // "reflink", "copy", or "reflink+copy" when some files fell back
  std::string io_engine;  // "io_uring" or "syscalls"
  std::string note;       // why the mechanism differs from the backend's first choice, if it does
  uint64_t files = 0;
  uint64_t directories = 0;  // including the root
  uint64_t symlinks = 0;
  uint64_t hardlinks = 0;  // extra names of an inode already cloned
  std::vector<SkippedEntry> skipped;
  uint64_t logical_bytes = 0;    // sum of regular file sizes
  uint64_t reflinked_bytes = 0;  // data bytes (allocated, holes excluded) of files cloned with FICLONE: shared, not copied
  uint64_t copied_bytes = 0;     // data bytes written by the sparse copy (holes excluded)
  uint64_t fallback_files = 0;   // files where FICLONE was refused and the sparse copy ran
  PhaseTimes phases;
  std::chrono::nanoseconds total{0};
};

nlohmann::json ToJson(const CloneReport& report);
// A human-readable multi-line table.
std::string FormatTable(const CloneReport& report);

}  // namespace fe::storage
