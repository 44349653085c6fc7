// The qemu plugin (see hypervisor/plugin.h for the contract).
#pragma once

#include "hypervisor/plugin.h"

namespace fe::hypervisor::qemu {

// The process-wide qemu plugin.
const Plugin& QemuPlugin();

}  // namespace fe::hypervisor::qemu
