// The dm-thin column of `forkbench --backends` (--filesystems dm-thin): where device-mapper runs. On
// this project's machine that is inside the QEMU/TCG guest (tests/guest/dm_thin_guest_run), so its
// times are a TCG guest's, comparable only with the copy and reflink columns measured beside them in
// the same run, never with the host's rows.
//
// A sample guest directory (a 10 GiB sparse disk.raw holding D of data in scattered 4 MiB chunks, a
// fully written 256 MiB memory.bin, configs) is written as a volume of the copy backend on the
// scratch directory's own filesystem, imported into a dm-thin volume (the loop-backed default pool
// under the scratch directory, as forkd makes it), and, given a reflink scratch directory, imported
// into the reflink backend there. Each backend then clones it; every clone is the backend's own
// durable Clone, removed untimed afterwards. Ds of 64 MiB, 1 GiB and 4 GiB show whether a mechanism's
// cost grows with the data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fe::bench {

struct DmThinColumnOptions {
  std::string scratch = "/var/tmp/forkbench-dm-thin";  // the copy column's filesystem; the pool's images
  std::string reflink_scratch;                         // a directory on XFS/btrfs: adds the reflink column
  std::vector<uint64_t> data_mib = {64, 1024, 4096};
  uint64_t memory_mib = 256;
  int repetitions = 5;       // dm-thin and reflink clones timed, after one untimed warm-up
  int copy_repetitions = 3;  // copies timed (no warm-up: a copy of 4 GiB is its own warm-up)
};

// Prints the table and the target check. Returns 0 when everything ran, 1 when something failed
// (no device-mapper, say), 130 when interrupted.
int RunDmThinColumn(const DmThinColumnOptions& options);

}  // namespace fe::bench
