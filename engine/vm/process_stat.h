// What /proc/<pid>/stat says about a process: enough to recognise it again (its start time, so a reused
// pid is never mistaken for it) and to tell a zombie from a running process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>

#include "base/status.h"

namespace fe::engine::vm {

struct ProcStat {
  char state = '?';         // field 3: 'R', 'S', 'D', 'T', 'Z' (zombie: exited, not yet reaped), ...
  uint64_t start_time = 0;  // field 22: clock ticks after boot
  uint64_t cpu_ticks = 0;   // fields 14 + 15: user and system time it ran, in clock ticks
};

// Parses the text of a /proc/<pid>/stat file. Field 2, "(comm)", may hold any bytes, spaces and ')'
// included, so the fields after it are counted from the *last* ')'. InvalidArgument naming `origin`
// when the text is malformed.
Result<ProcStat> ParseProcStat(std::string_view text, std::string_view origin);

// Reads /proc/<pid>/stat; NotFound when no process (not even a zombie) has that pid.
Result<ProcStat> ReadProcStat(pid_t pid);

}  // namespace fe::engine::vm
