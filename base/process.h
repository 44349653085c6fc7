// Running a helper program (mkfs.xfs, cp, ...) without a shell: argv in, exit status and output out.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace fe {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string output;  // stdout and stderr, interleaved
};

// Runs argv[0] (searched in PATH) with argv, waits for it. Fails only when it cannot be started.
Result<ProcessResult> RunProcess(const std::vector<std::string>& argv);

// Like RunProcess, but a non-zero exit is an error whose message carries the command and its output.
Status RunProcessChecked(const std::vector<std::string>& argv);

}  // namespace fe
