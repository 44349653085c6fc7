// The agent's log: one line per event on stderr, only with --log (the guest's console is not ours).
#pragma once

#include <string_view>

namespace fe::hypervisor::forkagent {

void EnableLog();
void Log(std::string_view message);

}  // namespace fe::hypervisor::forkagent
