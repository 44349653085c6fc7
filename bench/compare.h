// `forkbench --compare`: in one run and on the same inputs, our clone against `cp -a` and against
// the physical floor (a bare FICLONE loop), on each scratch filesystem.
#pragma once

#include <string>
#include <vector>

namespace fe::bench {

struct CompareOptions {
  std::vector<std::string> filesystems = {"xfs", "btrfs", "ext4"};
  // Timed runs per method (after one untimed, verified warm-up). Modest by default: the ext4 copies
  // of the guest directory take about a second each.
  int repetitions = 5;
  std::string json_path;  // also write the results as JSON here, if set
};

// Prints one table per filesystem and dataset. Returns the process exit code: 0 when everything
// ran, 1 when something failed, 130 when interrupted by a signal.
int RunCompare(const CompareOptions& options);

}  // namespace fe::bench
