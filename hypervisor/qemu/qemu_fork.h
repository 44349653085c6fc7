// Making a cloned QEMU instance directory a VM of its own (the pure half of the plugin).
//
// The fork's qemu-config.json is rewritten field by field:
//  - drives, kernel, initrd and the guest-RAM file: a path equal to the source directory or beneath
//    it moves to the same place under the fork's directory (snapshot::PathRewriter); anything else is
//    kept ("/images/base.raw" stays shared, and "/data/vm-10/x" is not beneath "/data/vm-1"). A
//    *writable* drive outside the source directory is refused (source and fork would write one
//    disk), and so is a guest-RAM file outside it (shared, share=on: they would share their RAM).
//  - chardev paths and the QMP socket are runtime files of the QEMU process: they move into the fork's
//    directory (rewritten when beneath the source, else <target>/<file name>), so two QEMUs never bind
//    one socket or write one log.
//  - the TAP ifname and MAC of the NIC, and the vsock guest CID, become the fork's NetworkIdentity's.
//    At most one NIC (one identity per instance); the fork's identity must differ from the source's.
//  - a vmgenid GUID is replaced by a new one, so the guest kernel sees it was cloned and reseeds.
//  - `append` (the kernel command line) and unknown fields are never touched.
// Paths already beneath the target directory are kept, so preparing a fork twice is harmless.
//
// Restores: QEMU's saved state (<snapshot dir>/vmstate, see qemu_controller.h) holds no host paths, so
// no path alias is needed; it does hold device state such as the virtio-net MAC, which therefore still
// is the source's after a restore: the guest must apply RestorePlan::identity itself.
#pragma once

#include <string>
#include <string_view>

#include "hypervisor/plugin.h"
#include "hypervisor/qemu/qemu_config.h"

namespace fe::hypervisor::qemu {

// The fork's configuration. `new_vmgenid` replaces a GUID-valued vmgenid ("auto" is kept). `origin`
// names the configuration in error messages.
Result<Config> RewriteConfigForFork(const Config& source, const ForkSpec& spec, std::string_view origin,
                                    const std::string& new_vmgenid);

// Rewrites <spec.target_dir>/qemu-config.json (atomically) and, for a fork from a snapshot, finds the
// snapshot through the directory's manifest and checks its state file is there. Nothing is written
// when any check fails.
Result<PreparedFork> PrepareFork(const ForkSpec& spec);

// Plugin::CheckGuestDirectory: qemu-config.json parses and validates; with `standby`, the snapshot
// (the manifest's snapshot_dir, or "snapshot") has its description and its state file.
Status CheckGuestDirectory(const std::string& dir, bool standby);

// Plugin::RunningMemoryFile: the memory_file of <dir>/qemu-config.json, when there is one and it lies in
// `dir`; Unsupported (no memory_file) or InvalidArgument (outside `dir`) otherwise.
Result<MemoryFile> RunningMemoryFile(const std::string& dir);

// Plugin::SnapshotMemoryFile: the memory_file of <dir>/qemu-config.json, when it lies in `dir` and the
// snapshot left guest RAM there (qemu-snapshot.json ignore_shared_memory). Unsupported saying why not.
Result<std::string> SnapshotMemoryFile(const std::string& dir);

// A random (version 4) GUID, lower-case.
std::string NewGuid();

}  // namespace fe::hypervisor::qemu
