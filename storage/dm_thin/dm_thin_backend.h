// The dm-thin backend: every volume is a thin volume in one device-mapper thin pool holding a
// filesystem (volume_filesystem.h), mounted at Path(volume). The whole guest directory (disk images,
// memory file, configs, snapshot) lives on it, so a clone is one thin snapshot of the device: its cost
// does not depend on what the volume holds, and every file of the clone shares its blocks with the
// parent until one of them writes.
//
// Names. The pool is the dm device config.pool_name; the thin device of volume V is the dm device
// "<pool>-<V>", node /dev/mapper/<pool>-<V> (DevicePath). Path(V) is <root>/V, the mount point.
// The pool's ledger (dm_thin_ledger.h) and default loop images live in <root>/.dm-thin/.
//
// Operations, each recording its intent in the ledger before touching a device:
//   Create   reserve id -> create_thin -> activate -> format -> mkdir -> mount -> ready
//   Clone    reserve id -> suspend the active parent (which freezes its filesystem: the snapshot is
//            consistent) -> create_snap -> resume (always, RAII) -> activate -> mkdir -> mount ->
//            ready. Any failure undoes the steps made, in reverse: the snapshot is unmounted,
//            deactivated and deleted, the mount point removed and the id released.
//   Import   the source measured first: refused with kNoSpace (nothing made) when its data blocks would
//            take the pool above config.fill_threshold; then Create with the size the files need
//            (ImportVolumeBytes, at least config.volume_size_bytes), and the files copied in with
//            their holes kept (only data extents are written); removed on failure.
//   Remove   unmount (Busy while files are in use) -> deactivate (Busy if the device is open) ->
//            removing -> delete the id (its blocks go back to the pool) -> mount point removed ->
//            record dropped.
// Create and Clone are refused with kNoSpace while the pool's data or metadata usage is above
// config.fill_threshold, or when the pool is read-only / out of space.
//
// Recovery. Open() reconciles the ledger with the kernel: a volume left kCreating is undone
// (unmounted, device removed, id deleted from the pool if it got there, mount point removed, id
// released), one left kRemoving is finished, and a ready volume whose device is not active or not
// mounted (after a reboot, say) is activated and mounted. A step that fails is logged and retried at
// the next Open(); its id stays reserved.
//
// The backend never unmounts or deactivates anything when it is destroyed: guests keep their files
// across a daemon restart. Deactivate() is the explicit "shut the pool down" (host shutdown, tests).
//
// The kernel's device-mapper and the volume filesystem are passed in (DmThinSystem), so tests inject
// failures at every step. Needs root and a kernel with dm-thin-pool; Open() fails with Unsupported
// and the reason otherwise. Threads: as Backend (different volume names concurrently). Snapshots are
// serialised pool-wide, since a parent may be the origin of two concurrent clones.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "base/status.h"
#include "storage/dm_thin/device_mapper.h"
#include "storage/dm_thin/dm_thin_config.h"
#include "storage/dm_thin/dm_thin_ledger.h"
#include "storage/dm_thin/dm_thin_pool.h"
#include "storage/dm_thin/volume_filesystem.h"
#include "storage/tree/directory_backend.h"

namespace fe::storage::dm_thin {

// What the backend drives: the kernel's device-mapper and the volumes' filesystem (null: the real ones).
struct DmThinSystem {
  const DeviceMapper* device_mapper = nullptr;
  const VolumeFilesystem* filesystem = nullptr;
};

class DmThinBackend final : public tree::DirectoryBackend {
 public:
  static Result<std::unique_ptr<DmThinBackend>> Open(const DmThinConfig& config, std::string reason,
                                                     DmThinSystem system = {});

  std::string_view Name() const override { return "dm-thin"; }
  BackendCapabilities Capabilities() const override;
  Status Create(const std::string& volume) override;
  Result<CloneReport> Import(const std::string& source_dir, const std::string& volume) override;
  Result<CloneReport> Clone(const std::string& parent, const std::string& volume) override;
  Status Remove(const std::string& volume) override;
  // The files' sizes as logical bytes, the thin device's mapped sectors as allocated bytes. Sharing
  // between snapshots is not known (shared_bytes unset).
  Result<VolumeUsage> Usage(const std::string& volume) override;
  // Volumes that are ready, from the ledger.
  Result<std::vector<std::string>> List() override;
  // The thin pool's data and metadata use, in bytes, with the fill threshold and mode.
  Result<std::optional<PoolUsage>> Pool() const override;

  // The volume's block device, /dev/mapper/<pool>-<volume> (whether or not it exists).
  std::string DevicePath(const std::string& volume) const;
  // The pool's current usage and mode.
  Result<PoolStatus> PoolHealth() const;
  const DmThinConfig& config() const { return config_; }
  // Deactivates every thin device and the pool, keeping all data and the ledger; a later Open()
  // activates them again. The backend must not be used afterwards.
  Status Deactivate();

 private:
  DmThinBackend(const DmThinConfig& config, UniqueFd root_fd, std::string reason, std::unique_ptr<ThinLedger> ledger,
                ThinPool pool, const DeviceMapper& device_mapper, const VolumeFilesystem& filesystem);
  std::string DmName(const std::string& volume) const;
  // Create with a virtual size of `sectors`.
  Status CreateSized(const std::string& volume, uint64_t sectors);
  Status CheckRoomFor(const std::string& what) const;
  Status CheckNewName(const std::string& volume) const;
  Status Activate(const std::string& volume, const ThinRecord& record);
  // Makes the mount point if missing and mounts the volume's device there unless it is mounted.
  Status MountVolume(const std::string& volume);
  // Undoes whatever of `volume` exists: mount, device, pool id (unless `delete_id` is false: the pool
  // refused to create it, so an id there belongs to someone else), mount point, record. Idempotent.
  Status Discard(const std::string& volume, const ThinRecord& record, bool delete_id);
  Status DeleteThinId(uint32_t id);
  // Annotates a failed create_thin/create_snap; EEXIST means the ledger does not know the pool.
  Status ExplainCreateFailure(Status created, uint32_t id, const std::string& what) const;
  Status RemoveMountPoint(const std::string& volume);
  void Reconcile();

  const DmThinConfig config_;
  const std::unique_ptr<ThinLedger> ledger_;
  const ThinPool pool_;
  const DeviceMapper& dm_;
  const VolumeFilesystem& filesystem_;
  std::mutex snapshot_mutex_;  // held around suspend -> create_snap -> resume
};

// The factory the engine uses: DmThinBackend::Open with a reason naming the pool.
Result<std::unique_ptr<DmThinBackend>> OpenDmThinBackend(const DmThinConfig& config);

}  // namespace fe::storage::dm_thin
