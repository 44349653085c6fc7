// cloud-hypervisor's command line for booting a VmConfig (LaunchMode::kBoot): pure, from the JSON.
//
// Carried: cpus (boot, max, kvm_hyperv, max_phys_bits), memory (size, mergeable, shared, hugepages,
// hugepage_size, hotplug_size, prefault), payload (kernel, initramfs, firmware, cmdline), disks, net,
// rng, fs, pmem, serial, console, vsock (their common options: paths and sockets, identity, queues,
// read-only/direct/vhost-user flags, ids), watchdog and pvpanic. Other fields of those sections keep
// cloud-hypervisor's defaults. Sections the command line built here cannot express (balloon, devices,
// user_devices, vdpa, generic_vhost_user, numa, tpm, pci_segments, rate_limit_groups, landlock_rules,
// ivshmem, memory.zones) are refused with Unsupported naming the field, and so is a value holding one
// of , " [ ] (cloud-hypervisor's option syntax would split it).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "hypervisor/cloud_hypervisor/field_patterns.h"

namespace fe::hypervisor::cloud_hypervisor {

// The options after the binary and --api-socket, e.g. {"--cpus", "boot=2", "--kernel", "/vm/vmlinux",
// "--disk", "path=/vm/root.raw", ...}. `file` names the config in errors.
Result<std::vector<std::string>> BootArguments(const Json& config, std::string_view file);

}  // namespace fe::hypervisor::cloud_hypervisor
