// forkbench --density: how many forks of one template fit in memory, with RAM of their own ("private")
// and mapping the template's RAM file ("shared", engine/shared_memory.cc).
//
// One template (the --e2e guest, `memory_mib` of RAM in a shared file, half of it written by the guest
// before it is stood by). For each mode and each count N, N forks are made Running in one request, each
// reads all its RAM (QMP pmemsave to /dev/null: every page is touched, as a guest that ran a while
// would), then their hypervisor processes' smaps_rollup are summed: PSS (what they cost together,
// shared pages counted once) and private bytes (what each holds alone). Restore latency is each fork's
// restore phase (identity handoff included). Then one fork of each mode is stood by: a shared fork
// saves its RAM in full (its RAM is a private mapping, not a file it owns), a private one only its
// device state. Runs as root on a loop-mounted reflink XFS, in a network namespace of its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fe::bench {

struct DensityOptions {
  std::string guest_dir;  // tests/e2e's fe-e2e-guest writes one
  uint64_t memory_mib = 256;
  std::vector<int> counts = {1, 8, 32};
};

// Prints the table; 0 when every measurement ran, 1 otherwise.
int RunDensity(const DensityOptions& options);

}  // namespace fe::bench
