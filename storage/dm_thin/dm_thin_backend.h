// The dm-thin backend: every volume is a thin volume in one device-mapper thin pool (its disk image,
// a block device) plus a small directory for the instance's configs and snapshot files. Cloning is a
// thin snapshot, whose cost does not depend on what the volume holds; the directory is cloned with
// the tree cloner (reflink, or copy where the data root has no reflink).
//
// Names. The pool is the dm device config.pool_name; the thin device of volume V is the dm device
// "<pool>-<V>", node /dev/mapper/<pool>-<V> (DevicePath). Path(V) is <root>/V, the directory.
// The pool's ledger (dm_thin_ledger.h) and default loop images live in <root>/.dm-thin/.
//
// Operations, each recording its intent in the ledger before touching a device:
//   Create   reserve id -> create_thin -> activate -> mkdir -> ready
//   Clone    reserve id -> suspend active parent -> create_snap -> resume (always, RAII) -> activate
//            -> clone the directory -> ready. Any failure undoes the steps made, in reverse: the
//            snapshot is deactivated and deleted, the directory removed and the id released.
//   Remove   deactivate (Busy if the device is open) -> removing -> directory moved away ->
//            delete -> directory removed -> record dropped.
// Create and Clone are refused with kNoSpace while the pool's data or metadata usage is above
// config.fill_threshold, or when the pool is read-only / out of space.
//
// Recovery. Open() reconciles the ledger with the kernel: a volume left kCreating is undone (device
// removed, id deleted from the pool if it got there, directory removed, id released), one left
// kRemoving is finished, and a ready volume whose device is not active (after a reboot, say) is
// activated. A step that fails is logged and retried at the next Open(); its id stays reserved.
//
// The backend never deactivates anything when it is destroyed: guests keep their disks across a
// daemon restart. Deactivate() is the explicit "shut the pool down" (host shutdown, tests).
//
// Needs root and a kernel with dm-thin-pool; Open() fails with Unsupported and the reason otherwise.
// Threads: as Backend (different volume names concurrently). Snapshots are serialised pool-wide,
// since a parent may be the origin of two concurrent clones.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "base/status.h"
#include "storage/dm_thin/dm_thin_config.h"
#include "storage/dm_thin/dm_thin_ledger.h"
#include "storage/dm_thin/dm_thin_pool.h"
#include "storage/tree/directory_backend.h"
#include "storage/tree/tree_cloner.h"

namespace fe::storage::dm_thin {

class DmThinBackend final : public tree::DirectoryBackend {
 public:
  // Tests only: called before each step of Create/Clone with the step's name ("create_thin",
  // "create_snap", "activate", "directory", "commit") and the new volume's thin id; a non-ok Status
  // fails that step as if the kernel or filesystem had. Proves every rollback path.
  using FaultHook = std::function<Status(std::string_view step, uint32_t thin_id)>;

  static Result<std::unique_ptr<DmThinBackend>> Open(const DmThinConfig& config, std::string reason,
                                                     FaultHook fault_hook = nullptr);

  std::string_view Name() const override { return "dm-thin"; }
  BackendCapabilities Capabilities() const override;
  Status Create(const std::string& volume) override;
  Result<CloneReport> Clone(const std::string& parent, const std::string& volume) override;
  Status Remove(const std::string& volume) override;
  // The directory's usage plus the thin device: its virtual size as logical bytes, its mapped
  // sectors as allocated bytes. Sharing between snapshots is not known (shared_bytes unset).
  Result<VolumeUsage> Usage(const std::string& volume) override;
  // Volumes that are ready, from the ledger.
  Result<std::vector<std::string>> List() override;

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
                ThinPool pool, FaultHook fault_hook);
  std::string DmName(const std::string& volume) const;
  Status Fault(std::string_view step, uint32_t id) const;
  Status CheckRoomFor(const std::string& what) const;
  Status CheckNewName(const std::string& volume) const;
  Status Activate(const std::string& volume, const ThinRecord& record);
  // Undoes whatever of `volume` exists: device, pool id (unless `delete_id` is false: the pool
  // refused to create it, so an id there belongs to someone else), directory, record. Idempotent.
  Status Discard(const std::string& volume, const ThinRecord& record, bool delete_id);
  Status DeleteThinId(uint32_t id);
  // Annotates a failed create_thin/create_snap; EEXIST means the ledger does not know the pool.
  Status ExplainCreateFailure(Status created, uint32_t id, const std::string& what) const;
  Status RemoveDirectoryIfPresent(const std::string& name);
  void Reconcile();

  const DmThinConfig config_;
  const std::unique_ptr<ThinLedger> ledger_;
  const ThinPool pool_;
  const FaultHook fault_hook_;
  std::mutex snapshot_mutex_;  // held around suspend -> create_snap -> resume
};

// The factory the engine uses: DmThinBackend::Open with a reason naming the pool.
Result<std::unique_ptr<DmThinBackend>> OpenDmThinBackend(const DmThinConfig& config);

}  // namespace fe::storage::dm_thin
