#include "hypervisor/registry/registry.h"

#include <array>

#include "hypervisor/cloud_hypervisor/cloud_hypervisor.h"
#include "hypervisor/firecracker/firecracker.h"
#include "hypervisor/qemu/qemu.h"

namespace fe::hypervisor::registry {
namespace {

std::array<const Plugin*, 3> Plugins() {
  return {&cloud_hypervisor::CloudHypervisorPlugin(), &qemu::QemuPlugin(), &firecracker::FirecrackerPlugin()};
}

}  // namespace

Result<const Plugin*> FindPlugin(std::string_view kind) {
  for (const Plugin* plugin : Plugins()) {
    if (plugin->Kind() == kind) return plugin;
  }
  std::string supported;
  for (const std::string& name : SupportedKinds()) supported += (supported.empty() ? "" : ", ") + name;
  return Status::Unsupported("hypervisor '" + std::string(kind) + "' is not supported: forkengine supports " +
                             supported);
}

std::vector<std::string> SupportedKinds() {
  std::vector<std::string> kinds;
  for (const Plugin* plugin : Plugins()) kinds.emplace_back(plugin->Kind());
  return kinds;
}

}  // namespace fe::hypervisor::registry
