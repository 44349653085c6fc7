// Writing a running VM's RAM file back before the live fork pauses it, so the pause stays short.
//
// Why. The live fork (engine/live_fork.cc) clones the source's RAM file while the source is paused, and
// a clone (FICLONE) first writes back every dirty page of the file: the pause grows with what the
// guest dirtied since the last writeback (1 GiB all dirty: 0.25-0.5 s on loop XFS). Writing the file
// back while the guest still runs, in rounds like pre-copy migration, leaves the pause only what the
// guest dirtied during the last round.
//
// Rounds. Each round asks the kernel to write back the whole file and waits for it
// (sync_file_range WAIT_BEFORE|WRITE|WAIT_AFTER: no device flush, which fdatasync would add and which
// costs 150+ ms through a loop device), then reads how many pages are dirty again (the cachestat
// syscall, Linux 6.5+). The rounds stop when what is left would take at most `pause_target` to write
// back (at the write-back rate the rounds measured), when no more than kSmallRemainder is left, or
// at `max_time`. When the remainder stops shrinking (the guest dirties as fast as the rounds write) and
// a throttle was given, the VM's CPU is throttled in steps (`throttle_steps`, as migration's
// auto-converge does) for the remaining rounds; the caller releases it and pauses the VM right after
// (a throttled VMM is slow to answer the pause). Without cachestat the remainder is unknown:
// `max_rounds_blind` rounds are run.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "engine/vm/cpu_throttle.h"

namespace fe::engine::vm {

inline constexpr uint64_t kSmallRemainder = 1 << 20;

struct PreflushPolicy {
  std::chrono::microseconds pause_target{10'000};
  std::chrono::milliseconds max_time{3'000};
  int max_rounds = 40;
  int max_rounds_blind = 2;
  std::vector<int> throttle_steps = {50, 80, 95};  // percent of CPU taken, one step per stalled round
};

struct PreflushReport {
  int rounds = 0;
  int64_t preflush_us = 0;             // all rounds, throttled ones included
  int64_t throttle_started_us = -1;    // since the first round's start, when the throttle began; -1: never
  int throttle_percent = 0;            // the last step applied (0: none)
  uint64_t written_bytes = 0;          // dirty bytes the rounds found and wrote back
  std::optional<uint64_t> dirty_left;  // after the last round; unknown without cachestat
  bool converged = false;              // the remainder met the target
  // A throttle that could not be applied: the rounds went on without it (the fork need not fail for it).
  std::string throttle_error;
};

// The dirty bytes of the file open as `fd` in the page cache; nullopt when the kernel has no cachestat.
Result<std::optional<uint64_t>> DirtyBytes(int fd);

// Writes `fd`'s dirty pages back and waits for them (no device flush).
Status WriteBackDirtyPages(int fd, const std::string& path);

// The rounds, on the RAM file of a running VM open as `fd` (`display` names it in errors). `throttle` may
// be null (no throttling).
Result<PreflushReport> PreflushRamFile(int fd, const std::string& display, const PreflushPolicy& policy,
                                       CpuThrottle* throttle, const Clock& clock);

}  // namespace fe::engine::vm
