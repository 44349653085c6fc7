#include "hypervisor/cloud_hypervisor/path_fields.h"

#include <array>

namespace fe::hypervisor::cloud_hypervisor {
namespace {

using snapshot::FileRole;

constexpr std::array<PathField, 24> kPathFields = {{
    {"payload.kernel", Outside::kShared, FileRole::kPayload},
    {"payload.initramfs", Outside::kShared, FileRole::kPayload},
    {"payload.firmware", Outside::kShared, FileRole::kPayload},
    {"payload.igvm", Outside::kShared, FileRole::kPayload},
    {"payload.fw_cfg_config.items.item_list[].file", Outside::kShared, FileRole::kPayload},
    {"disks[].path", Outside::kWritableDisk, FileRole::kDisk},
    {"disks[].vhost_socket", Outside::kShared, FileRole::kRuntime},
    {"net[].vhost_socket", Outside::kVhostSocket, FileRole::kRuntime},
    {"fs[].socket", Outside::kShared, FileRole::kRuntime},
    {"pmem[].file", Outside::kWritablePmem, FileRole::kDisk},
    {"serial.file", Outside::kLog, FileRole::kRuntime},
    {"serial.socket", Outside::kBoundSocket, FileRole::kRuntime},
    {"console.file", Outside::kLog, FileRole::kRuntime},
    {"console.socket", Outside::kBoundSocket, FileRole::kRuntime},
    {"debug_console.file", Outside::kLog, FileRole::kRuntime},
    {"vsock.socket", Outside::kBoundSocket, FileRole::kRuntime},
    {"memory.zones[].file", Outside::kShared, FileRole::kMemory},
    {"generic_vhost_user[].socket", Outside::kShared, FileRole::kRuntime},
    {"user_devices[].socket", Outside::kShared, FileRole::kRuntime},
    {"vdpa[].path", Outside::kShared, FileRole::kOther},
    {"rng.src", Outside::kShared, FileRole::kOther},
    {"tpm.socket", Outside::kShared, FileRole::kRuntime},
    {"landlock_rules[].path", Outside::kShared, FileRole::kOther},
    {"ivshmem.path", Outside::kShared, FileRole::kMemory},
}};

}  // namespace

std::span<const PathField> PathFields() { return kPathFields; }

}  // namespace fe::hypervisor::cloud_hypervisor
