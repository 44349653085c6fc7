// The cloud-hypervisor plugin (see hypervisor/plugin.h for the contract).
#pragma once

#include "hypervisor/plugin.h"

namespace fe::hypervisor::cloud_hypervisor {

// The process-wide cloud-hypervisor plugin.
const Plugin& CloudHypervisorPlugin();

}  // namespace fe::hypervisor::cloud_hypervisor
