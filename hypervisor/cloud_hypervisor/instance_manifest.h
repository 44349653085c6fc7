// The manifest of a cloud-hypervisor instance directory, derived from its files: what the engine
// writes (snapshot::WriteManifest) when it creates or snapshots an instance, so a later fork knows
// what to carry and what to drop.
#pragma once

#include <string>

#include "base/status.h"
#include "snapshot/guest_directory.h"

namespace fe::hypervisor::cloud_hypervisor {

// Lists the instance's VmConfig files (config), the snapshot's state.json (device_state) and
// memory-ranges (memory), api.sock (runtime), and every path of the configs that lies beneath `dir`
// with its role (path_fields.h): disk and pmem images (disk), payload files (payload), memory-zone
// files (memory), logs and sockets (runtime), others (other). Files elsewhere are not listed; a path
// named twice keeps its first role. Errors are those of reading and parsing the configs.
Result<snapshot::Manifest> DescribeInstance(const std::string& dir);

}  // namespace fe::hypervisor::cloud_hypervisor
