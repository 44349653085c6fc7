// The pure half of the cloud-hypervisor plugin: rewriting a VmConfig JSON (a snapshot's config.json,
// or an instance's boot config in the same format, the body of the API's vm.create) for a fork.
//
// What changes, by typed field only (never free text: payload.cmdline is left alone, and so is every
// field this rewrite does not name):
//  - Paths, rewritten only when the value is the source directory or beneath it (PathRewriter):
//    payload kernel/initramfs/firmware/igvm and fw_cfg item files, disks[].path/vhost_socket,
//    net[].vhost_socket, fs[].socket, pmem[].file, serial/console file and socket,
//    debug_console.file, vsock.socket, memory.zones[].file, generic_vhost_user[].socket,
//    user_devices[].socket, vdpa[].path, rng.src, tpm.socket, landlock_rules[].path, ivshmem.path.
//  - Paths that stay outside the source directory are kept, except where two VMs would then share
//    something only one may own; those are refused (Unsupported, naming the field): a writable disk
//    (readonly false, not vhost-user) or pmem file (discard_writes false), a serial/console log file,
//    and a socket the fork's cloud-hypervisor would bind (vsock.socket, serial/console socket,
//    net[].vhost_socket in vhost_mode "Server").
//  - Network identity (see RewriteNetIdentity).
//  - vsock.cid: kept for a snapshot (the guest holds its CID in memory, and cloud-hypervisor's vsock
//    is a per-VM Unix-socket bridge, so equal CIDs never meet); the target CID for a boot config.
// Unknown fields and their order survive untouched. The snapshot's state.json is not rewritten: the
// only path it holds (virtio-block's disk_path) is informational and unused on restore.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "hypervisor/cloud_hypervisor/field_patterns.h"
#include "hypervisor/plugin.h"
#include "snapshot/path_rewrite.h"

namespace fe::hypervisor::cloud_hypervisor {

struct ConfigRewrite {
  snapshot::PathRewriter paths;
  NetworkIdentity source_identity;
  NetworkIdentity target_identity;
  bool keep_vsock_cid = false;  // true for a snapshot's config
};

// Rewrites every path field of `config` (see above) in place.
Status RewritePathFields(Json& config, const snapshot::PathRewriter& paths, std::string_view file);

// The identity NIC is the one whose tap or mac is the source identity's, or the only net entry. It
// gets the target's tap (unless vhost-user), mac, mask (from the target prefix length) and ip: an ip
// equal to the source's guest address or gateway becomes the target's guest address or gateway;
// another ip is kept. Its host_mac (the source TAP's MAC) is dropped so the fork's TAP keeps its own.
// Refused (Unsupported): an identity NIC backed by inherited fds, and another NIC with a TAP name
// (the fork would share the source's TAP).
Status RewriteNetIdentity(Json& config, const NetworkIdentity& source, const NetworkIdentity& target,
                          std::string_view file);

// The whole rewrite of one config.
Status RewriteConfig(Json& config, const ConfigRewrite& rewrite, std::string_view file);

// Text in, text out (pretty-printed JSON). `file` names the file in errors ("snapshot/config.json").
Result<std::string> RewriteConfigText(std::string_view text, const ConfigRewrite& rewrite, std::string_view file);

}  // namespace fe::hypervisor::cloud_hypervisor
