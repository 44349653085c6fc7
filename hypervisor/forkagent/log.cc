#include "hypervisor/forkagent/log.h"

#include <unistd.h>

#include <string>

namespace fe::hypervisor::forkagent {
namespace {
bool enabled = false;
}  // namespace

void EnableLog() { enabled = true; }

void Log(std::string_view message) {
  if (!enabled) return;
  std::string line = "forkagent: " + std::string(message) + "\n";
  // One write per line, so lines from the agent and the guest's shell do not interleave mid-line.
  [[maybe_unused]] ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace fe::hypervisor::forkagent
