// The firecracker plugin (see hypervisor/plugin.h for the contract).
#pragma once

#include "hypervisor/plugin.h"

namespace fe::hypervisor {

// The process-wide firecracker plugin.
const Plugin& FirecrackerPlugin();

}  // namespace fe::hypervisor
