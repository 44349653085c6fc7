// The storage Backend: where every instance's guest data lives and how it is cloned.
//
// Vocabulary. A backend manages *volumes* under one *data root*. A volume holds the guest data of one
// instance (disk images, memory file, snapshot config, small state files) and is named by a single
// path component, normally the instance id. A volume is either created empty or cloned from another
// volume, its *parent*; the parent is the clone's lineage and is never modified by the clone.
// Removing a volume never affects volumes cloned from it: each mechanism keeps shared data alive for
// as long as any clone references it.
//
// Lifecycle: Create, Clone or Import -> (the engine and the hypervisor use Path(volume)) -> Remove.
//
// Mechanisms differ in cost; callers branch on Capabilities(), never on Name():
//   dm-thin  device-mapper thin snapshot of the volume's block device, O(1) (storage/dm_thin/)
//   btrfs    subvolume snapshot, O(1); small trees reflinked (storage/btrfs/)
//   reflink  FICLONE per file, O(files + extents), needs XFS/btrfs-style reflink support (storage/tree/)
//   copy     sparse copy, O(data), works everywhere (last resort; storage/tree/)
// They are registered in storage/registry/backend_registry.cc, and one conformance suite
// (tests/storage/registry/backend_conformance_test.cc) holds every one of them to this contract.
//
// Errors: every operation returns a Status/Result whose message names the volume and path involved.
// Clone is atomic: on failure nothing exists under the new volume's name.
// Threads: all methods may be called concurrently for *different* volume names; callers serialise
// operations on the same volume (the engine's per-instance lock does).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "storage/clone_report.h"

namespace fe::storage {

struct BackendCapabilities {
  bool shares_data = false;          // clones share blocks with their parent until written
  bool constant_time_clone = false;  // clone cost does not grow with the volume's content
  bool quiesce_origin = false;       // the parent must not be written while it is being cloned
};

struct VolumeUsage {
  uint64_t logical_bytes = 0;    // sum of file sizes
  uint64_t allocated_bytes = 0;  // blocks allocated to the volume's files
  // Allocated bytes that are shared with another file (FIEMAP_EXTENT_SHARED), where known.
  std::optional<uint64_t> shared_bytes;
  // How these were measured: "fiemap" (extents flagged shared), "st_blocks" (no FIEMAP: sharing
  // unknown), "thin-pool mapped blocks" (dm-thin: sharing between snapshots unknown).
  std::string method;

  // Allocated bytes only this volume holds (freed when it is removed), where known.
  std::optional<uint64_t> exclusive_bytes() const {
    if (!shared_bytes) return std::nullopt;
    return allocated_bytes > *shared_bytes ? allocated_bytes - *shared_bytes : 0;
  }
};

// The shared pool a backend's volumes draw their blocks from, where it has one (dm-thin: its thin pool);
// the root's filesystem otherwise, which `GET /v1/storage` reports by itself.
struct PoolUsage {
  std::string name;
  uint64_t data_used_bytes = 0;
  uint64_t data_total_bytes = 0;
  uint64_t metadata_used_bytes = 0;
  uint64_t metadata_total_bytes = 0;
  // Creates, clones and imports are refused (kNoSpace) once data or metadata use is above this fraction.
  double fill_threshold = 0;
  std::string mode;  // "read-write", "read-only", "out-of-data-space" or "needs-check"
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Stable mechanism name: "reflink", "copy", ...
  virtual std::string_view Name() const = 0;
  virtual BackendCapabilities Capabilities() const = 0;
  // The data root this backend manages.
  virtual const std::string& Root() const = 0;
  // Why this backend was chosen for the root (probe outcome), for logs and `GET /storage`.
  virtual const std::string& SelectionReason() const = 0;

  // Creates an empty volume. AlreadyExists if the name is taken.
  virtual Status Create(const std::string& volume) = 0;
  // Clones `parent` into the new volume `volume`. AlreadyExists if `volume` exists, NotFound if
  // `parent` does not. The report says which mechanism each file actually used.
  virtual Result<CloneReport> Clone(const std::string& parent, const std::string& volume) = 0;
  // Creates `volume` holding a clone of the directory `source_dir`, which lies outside the data root
  // (an imported guest directory) and is never modified; copy-on-write where the filesystems allow.
  // AlreadyExists if `volume` exists; on failure nothing exists under its name.
  virtual Result<CloneReport> Import(const std::string& source_dir, const std::string& volume) = 0;
  // Removes the volume and everything in it. NotFound if it does not exist.
  virtual Status Remove(const std::string& volume) = 0;
  virtual Result<VolumeUsage> Usage(const std::string& volume) = 0;
  // Names of all volumes under the root, sorted.
  virtual Result<std::vector<std::string>> List() = 0;
  // The pool the volumes draw from, now; nullopt when they use the root's filesystem directly.
  virtual Result<std::optional<PoolUsage>> Pool() const { return std::optional<PoolUsage>(); }
  // Absolute path of the volume's directory (whether or not it exists).
  virtual std::string Path(const std::string& volume) const = 0;
  // Removes what an interrupted Create, Clone or Remove left under the root (a crash mid-clone leaves
  // a hidden temporary tree, one mid-removal a hidden doomed one) and returns their names. Only for
  // when no operation of this backend is in flight: the daemon calls it at start, under its lock.
  virtual Result<std::vector<std::string>> RemoveLeftovers() = 0;
};

// A volume name is one path component: [A-Za-z0-9][A-Za-z0-9._-]*, at most 128 characters.
Status ValidateVolumeName(std::string_view volume);

}  // namespace fe::storage
