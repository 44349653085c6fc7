// `forkbench --backends`: every storage backend, and the commands a user would run instead, on the
// same inputs side by side in one run. Each filesystem gets one data root; the inputs are volumes
// under it (btrfs subvolumes made with Backend::Create, then filled), and every timed run is a
// Backend::Clone (or the command) into a fresh volume, removed untimed afterwards.
//
//   btrfs  the btrfs backend always snapshotting, the reflink backend, auto, `btrfs subvolume
//          snapshot` and `cp -a --reflink=always`; plus a sweep of small trees for the
//          snapshot/reflink crossover (kBtrfsSnapshotCrossoverEntries)
//   xfs    the reflink backend, auto, `cp -a --reflink=always`
//   ext4   the copy backend (which is what auto opens there) and `cp -a --sparse=always
//          --reflink=never` (a real copy: coreutils 9.1 --sparse=always alone reflinks on
//          XFS/btrfs)
#pragma once

#include <string>
#include <vector>

namespace fe::bench {

struct BackendsOptions {
  // Names as for --compare; "ext4-loop" is a loop-mounted ext4, "ext4" the root filesystem.
  std::vector<std::string> filesystems = {"btrfs", "xfs", "ext4-loop"};
  // Timed runs per method after one untimed, verified warm-up; runs of under 100 ms get three
  // times as many.
  int repetitions = 7;
  // Sizes (files) of the btrfs crossover sweep; 10000 is the small-files input itself. 30 and 60
  // bracket the measured crossover (kBtrfsSnapshotCrossoverEntries).
  std::vector<int> tree_sizes = {10, 30, 60, 100, 1000, 10000};
  std::string json_path;  // also write the results as JSON here, if set
};

// Prints one table per filesystem and input, the sweep and the targets. Returns the process exit
// code: 0 when everything ran, 1 when something failed, 130 when interrupted by a signal.
int RunBackends(const BackendsOptions& options);

}  // namespace fe::bench
