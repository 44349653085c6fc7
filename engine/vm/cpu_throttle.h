// Slowing a running VM down without stopping it: a CPU quota on its hypervisor process.
//
// Why. A live fork pauses its source for as long as the RAM file's remaining dirty pages take to write
// back (engine/vm/ram_preflush.h). A guest that dirties memory faster than the rounds before the pause
// write it back never converges; pre-copy migration solves that by throttling the vCPUs in its last
// rounds (auto-converge). A hypervisor-independent way to do the same is a CPU quota on the whole VMM
// process: its vCPU threads get `100 - percent` % of each short period, so the guest dirties less while
// it keeps running (its stalls last at most one period, kPeriod).
//
// How. The process is moved into a cgroup of its own, created as a child of the cgroup it is in
// ("<its cgroup>/forkengine-throttle-<pid>", cpu controller: cgroup v1's cpu.cfs_quota_us, or v2's
// cpu.max), so that putting it back is moving it to the parent; Release (and the destructor) does that
// and removes the child. A forkd killed while a VM is throttled leaves it in that child: recovery calls
// ReleaseLeftoverThrottle for every running VM, which recognises the child by its name.
//
// Threads: one object per throttled process, used by one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include "base/status.h"

namespace fe::engine::vm {

class CpuThrottle {
 public:
  virtual ~CpuThrottle() = default;
  // Takes `percent` (1..99) of the process's CPU time away from now on; a later call replaces it.
  virtual Status Set(int percent) = 0;
  // Gives the process its CPU back. Idempotent.
  virtual Status Release() = 0;
};

// Short enough that a throttled vCPU stalls for milliseconds, long enough for the kernel's 1 ms
// minimum quota to allow 95%.
inline constexpr std::chrono::milliseconds kThrottlePeriod{20};

// A throttle on `pid` through its cpu cgroup (not yet applied: Set applies it). Unsupported, saying
// why, when this host has no usable cpu controller for it (none mounted, or a cgroup v2 whose
// controllers cannot be enabled below the process's cgroup).
Result<std::unique_ptr<CpuThrottle>> ThrottleThroughCgroup(pid_t pid);

// Moves `pid` out of a throttle child left by a killed forkd (back to the child's parent) and removes
// the child. Ok when the process is in no such child.
Status ReleaseLeftoverThrottle(pid_t pid);

}  // namespace fe::engine::vm
