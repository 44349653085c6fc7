// forkbench --snapshots: snapshots of a real running guest under QEMU TCG, through the engine (in
// process), issue #23.
//
// One QEMU template (bench/qemu_guest_template.h) with RAM in a shared file, its guest writing half
// its RAM before it beats. Its source is booted, then:
//  - `repetitions` snapshots of it while it runs (the live path: paused for the clone only): the
//    source's pause and the snapshot's total, median and max;
//  - `repetitions` forks to Running of the first snapshot, beside as many forks to Running of a
//    Standby instance made from the same source (a from_running fork to Standby): the fork's total,
//    its restore and its clone, medians; each fork deleted again.
// Runs as root on a loop-mounted reflink XFS, in a network namespace of its own with a bridge.
#pragma once

#include <cstdint>
#include <string>

namespace fe::bench {

struct SnapshotBenchOptions {
  std::string guest_dir;
  uint64_t memory_mib = 256;
  int repetitions = 5;
};

// Prints the table; 0 when every measurement ran, 1 otherwise.
int RunSnapshotBench(const SnapshotBenchOptions& options);

}  // namespace fe::bench
