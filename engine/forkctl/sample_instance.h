// A sample Cloud Hypervisor instance directory, in the format the cloud-hypervisor plugin reads
// (hypervisor/cloud_hypervisor/instance_files.h) and as a standby VM leaves it:
//
//   <dir>/disk.raw                 sparse raw disk image with scattered data written
//   <dir>/config.json              boot config (VmConfig, the body of vm.create)
//   <dir>/snapshot/config.json     the VmConfig as vm.snapshot writes it (every field populated)
//   <dir>/snapshot/state.json      device state, shaped like cloud-hypervisor's
//   <dir>/snapshot/memory-ranges   guest memory, fully written
//   <dir>/logs/serial.log          the serial console log (a runtime file: forks drop it)
//   <dir>/manifest.json            roles of the files above (cloud_hypervisor::DescribeInstance)
//
// Every path in the configs is absolute and beneath <dir>, so importing or forking the directory
// rewrites them to the clone's. The kernel lies outside (read-only, shared). Nothing here can boot a
// real guest (there is no root filesystem in the disk); it has the shape and the size of one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace fe::engine::forkctl {

struct SampleInstanceOptions {
  uint64_t disk_bytes = uint64_t{10} << 30;     // apparent size of disk.raw
  uint64_t memory_bytes = uint64_t{256} << 20;  // guest RAM, the size of memory-ranges
  int vcpus = 2;
  std::string kernel;  // payload.kernel; empty: /boot/vmlinuz-<running kernel release>
};

struct SampleInstance {
  std::string dir;
  std::vector<std::string> files;  // relative to dir, in the order above
  uint64_t logical_bytes = 0;      // apparent sizes of the files
  uint64_t data_bytes = 0;         // bytes of data written (the rest of disk.raw is a hole)
};

// Writes the sample into `dir` (absolute; created with mode 0755 when missing, else it must be an
// empty directory: AlreadyExists otherwise). On failure, what was written is left for the caller to
// inspect and remove. Sizes: the disk at least 1 MiB, memory at least 1 MiB and a multiple of 4 KiB.
Result<SampleInstance> WriteSampleInstance(const std::string& dir, const SampleInstanceOptions& options);

// "10G", "256M", "512K", "4096" (binary units, optional "iB"/"B" suffix, case-insensitive).
Result<uint64_t> ParseByteSize(std::string_view text);

}  // namespace fe::engine::forkctl
