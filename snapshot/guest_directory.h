// The guest directory of an instance and the VM snapshot inside it.
//
// Layout (one directory per instance, a storage volume):
//   <dir>/manifest.json         what each file is (this model, written by the engine/plugins)
//   <dir>/<files>               disks, memory, hypervisor config, snapshot files, runtime files
//
// Every file has a role. A fork carries disks, memory, configs and snapshot state (cloned
// copy-on-write) but never runtime files: sockets, pid files, logs and lock files belong to the
// process that made them. The manifest is JSON, written atomically (temp file, fsync, rename), and
// unknown fields survive a read-modify-write.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/confined_dir.h"
#include "base/status.h"

namespace fe::snapshot {

enum class FileRole {
  kDisk,         // a disk image the guest writes (raw, qcow2)
  kMemory,       // guest RAM: a snapshot's memory file or a shared memory-backend file
  kConfig,       // the hypervisor's configuration of this VM
  kDeviceState,  // a snapshot's device/vCPU state (binary or JSON)
  kPayload,      // kernel, initramfs, firmware kept with the instance
  kRuntime,      // sockets, pid files, logs, locks: never carried into a fork
  kOther,
};

std::string_view FileRoleName(FileRole role);
Result<FileRole> ParseFileRole(std::string_view name);

struct ManifestEntry {
  std::string path;  // relative to the guest directory, no ".." components
  FileRole role = FileRole::kOther;
};

struct Manifest {
  std::string hypervisor;    // plugin kind: "cloud-hypervisor", "qemu", "firecracker"
  std::string snapshot_dir;  // relative directory holding the VM snapshot, empty when none
  std::vector<ManifestEntry> files;

  // Entries with `role`.
  std::vector<std::string> PathsWith(FileRole role) const;
};

// Reads <dir>/manifest.json. NotFound when absent; InvalidArgument naming the field when malformed.
// Every file operation here resolves beneath the directory (base/confined_dir.h); the path forms
// open the directory and do the same.
Result<Manifest> ReadManifest(const ConfinedDir& dir);
Result<Manifest> ReadManifest(const std::string& dir);
// Writes <dir>/manifest.json atomically.
Status WriteManifest(const ConfinedDir& dir, const Manifest& manifest);
Status WriteManifest(const std::string& dir, const Manifest& manifest);

// Removes the manifest's runtime files from a freshly cloned directory (the fork must not inherit a
// socket path its hypervisor will try to bind, nor the source's pid file). Missing ones are fine.
// A runtime entry that is a directory (logs/) is emptied and kept, for the fork's own processes to
// write into. Symlinks are removed, never followed.
Status RemoveRuntimeFiles(const ConfinedDir& dir, const Manifest& manifest);
Status RemoveRuntimeFiles(const std::string& dir, const Manifest& manifest);

}  // namespace fe::snapshot
