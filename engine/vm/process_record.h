// What the engine records of a running hypervisor process (in instance.json), so a restarted
// daemon can find the process again and never mistake another one for it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace fe::engine::vm {

// The hypervisor process of a Running instance. start_time is the process's start time in clock
// ticks since boot (/proc/<pid>/stat field 22), so a reused pid is never mistaken for it.
struct ProcessRecord {
  pid_t pid = 0;
  uint64_t start_time = 0;
  std::string api_socket;
};

}  // namespace fe::engine::vm
