// The registry of hypervisor plugins: the only place that maps a kind name to a plugin.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "hypervisor/plugin.h"

namespace fe::hypervisor::registry {

// The plugin for `kind`, or Unsupported ("hypervisor 'vz' is not supported: forkengine supports
// cloud-hypervisor, qemu, firecracker"). The returned plugin lives for the whole process.
Result<const Plugin*> FindPlugin(std::string_view kind);
std::vector<std::string> SupportedKinds();

}  // namespace fe::hypervisor::registry
