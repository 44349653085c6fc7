// Timing another program (cp) as a whole process, the way a user or a shell script would pay for
// it: spawn, exec, its work, exit, reaped by waitpid.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/status.h"

namespace fe::bench {

// Runs argv (argv[0] searched in PATH) with stdout discarded and returns the wall time from just
// before the spawn until waitpid returns. A non-zero exit is an error carrying the command's
// stderr.
Result<std::chrono::nanoseconds> TimeCommand(const std::vector<std::string>& argv);

std::string CommandLine(const std::vector<std::string>& argv);

}  // namespace fe::bench
