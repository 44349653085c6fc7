// The path fields of a cloud-hypervisor VmConfig (vm_config.rs in cloud-hypervisor's source): what
// each holds (its role in a guest directory when it lies there) and what keeping it outside the
// source directory would mean for a fork running beside the source.
#pragma once

#include <span>
#include <string_view>

#include "snapshot/guest_directory.h"

namespace fe::hypervisor::cloud_hypervisor {

enum class Outside {
  kShared,        // read-only, or a client connection: a fork may share it
  kWritableDisk,  // two VMs would write one image, unless the entry is readonly or vhost-user
  kWritablePmem,  // likewise, unless discard_writes
  kLog,           // the fork would truncate and write the source's log
  kBoundSocket,   // the fork's cloud-hypervisor would bind the source's socket
  kVhostSocket,   // bound in vhost_mode "Server", else a client connection
};

struct PathField {
  std::string_view pattern;  // see json_fields.h
  Outside outside;
  snapshot::FileRole role;
};

std::span<const PathField> PathFields();

}  // namespace fe::hypervisor::cloud_hypervisor
