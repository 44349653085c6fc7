// How much memory a hypervisor process holds, from /proc/<pid>/smaps_rollup: what shared-memory forks
// are about (engine/shared_memory.cc). A fork mapping its template's memory file privately holds the
// pages it wrote as anonymous memory of its own and the rest as shared file pages; PSS divides each
// shared page among the processes mapping it, so PSS summed over processes is what they cost together.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/status.h"
#include "engine/vm/process_record.h"

namespace fe::engine::vm {

struct ProcessMemory {
  uint64_t rss_bytes = 0;
  uint64_t pss_bytes = 0;
  uint64_t anonymous_bytes = 0;  // "Anonymous": written pages (COW copies among them), the VMM's heap
  uint64_t shared_bytes = 0;     // "Shared_Clean" + "Shared_Dirty": pages other processes map too
  uint64_t private_bytes = 0;    // "Private_Clean" + "Private_Dirty": mapped by no other process
  uint64_t swap_pss_bytes = 0;   // "SwapPss"
  bool operator==(const ProcessMemory&) const = default;
};

// Parses smaps_rollup text ("Rss:  1234 kB" lines); InvalidArgument naming `origin` when it has no Rss line.
Result<ProcessMemory> ParseSmapsRollup(std::string_view text, std::string_view origin);

// Reads /proc/<pid>/smaps_rollup of the process `record` names: NotFound when that process (same pid and
// start time) no longer runs.
Result<ProcessMemory> ReadProcessMemory(const ProcessRecord& record);

}  // namespace fe::engine::vm
