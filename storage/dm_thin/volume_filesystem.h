// The filesystem inside each thin volume: what makes a volume a directory the engine and the
// hypervisors use like any other (Path(volume) is its mount point), while a clone stays one thin
// snapshot of the whole device.
//
// ext4, not XFS: mkfs.xfs needs at least 300 MiB and zeroes a 64 MiB log, which a thin pool pays in
// real blocks per volume; mke2fs with lazy inode tables and journal writes a few MiB, whatever the
// volume's virtual size. ext4 also mounts a snapshot beside its origin (same UUID) without the
// `nouuid` XFS needs. Mounted with `discard`, so files deleted in a volume give their blocks back to
// the pool, and `noinit_itable`, so no background zeroing fills the pool behind the backend's back.
//
// An interface so tests inject failures at each step (tests/storage/dm_thin/).
// Threads: implementations may be called concurrently for different devices and directories.
#pragma once

#include <string>

#include "base/status.h"

namespace fe::storage::dm_thin {

class VolumeFilesystem {
 public:
  virtual ~VolumeFilesystem() = default;
  // Makes a new, empty filesystem on `device`.
  virtual Status Format(const std::string& device) const = 0;
  // Mounts `device` on the existing directory `dir`.
  virtual Status Mount(const std::string& device, const std::string& dir) const = 0;
  // Unmounts `dir`: Ok when nothing is mounted there, Busy when files on it are in use.
  virtual Status Unmount(const std::string& dir) const = 0;
  // Whether a filesystem is mounted on `dir` (false when `dir` does not exist).
  virtual Result<bool> Mounted(const std::string& dir) const = 0;
};

// ext4 through mke2fs (found in PATH) and mount(2).
const VolumeFilesystem& Ext4Volumes();

}  // namespace fe::storage::dm_thin
