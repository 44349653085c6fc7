// Guest RAM collapsed back into transparent huge pages before a background snapshot
// (process_madvise(MADV_COLLAPSE) on the hypervisor process, Linux >= 6.1).
//
// Why. QEMU's background snapshot write-protects guest RAM with userfaultfd. The guest's writes under
// that protection split the huge pages that back its RAM, and the next snapshot then pays per 4 KiB
// page twice: its preparation reads every page (~1.2 s per GiB here instead of ~20 ms on huge pages),
// and its capture stop write-protects every page table entry (15 ms at 1 GiB instead of 3–6 ms), both
// measured with QEMU 7.2 on this machine. Collapsing guest RAM again, while the source runs and before
// its disks are held still, takes ~80 ms per GiB of host work.
//
// The cost: a 2 MiB range of guest RAM that has any page present becomes a whole huge page, so the
// source may hold up to its full RAM size. Ranges never touched stay unpopulated.
//
// Which mapping is guest RAM: the largest private anonymous read-write mapping of the process, at
// least kMinGuestRamBytes and at most the host's RAM (QEMU's guest RAM is one such mapping; its heap
// arenas and stacks are far smaller; reservations larger than the host, as a sanitizer's shadow, are
// not guest RAM).
#pragma once

#include <cstdint>
#include <string_view>

#include "base/status.h"
#include "engine/vm/process_record.h"

namespace fe::engine::vm {

inline constexpr uint64_t kMinGuestRamBytes = 128ull << 20;

struct MemoryRange {
  uint64_t start = 0;
  uint64_t length = 0;
  bool operator==(const MemoryRange&) const = default;
};

// The guest RAM mapping in /proc/<pid>/maps text, at most `max_bytes` long; NotFound naming `origin`
// when none qualifies.
Result<MemoryRange> FindGuestRamMapping(std::string_view proc_maps, std::string_view origin, uint64_t max_bytes);

// Collapses the guest RAM of the process `record` names into huge pages. Returns the range advised.
// NotFound when the process no longer runs or has no guest RAM mapping; Unsupported without
// process_madvise; else errno's code: EINVAL before Linux 6.1 (no MADV_COLLAPSE), or where the kernel
// could not collapse some range this time (EINVAL, EAGAIN, ENOMEM). Best effort: a failure changes nothing else.
Result<MemoryRange> CollapseGuestRamIntoHugePages(const ProcessRecord& record);

}  // namespace fe::engine::vm
