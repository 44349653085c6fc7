#include "storage/dm_thin/dm_thin_backend.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <optional>

#include "storage/dm_thin/dm_thin_device.h"
#include "storage/dm_thin/dm_thin_status.h"
#include "storage/dm_thin/dm_thin_table.h"
#include "base/log.h"
#include "base/reverter.h"
#include "base/fs_util.h"

namespace fe::storage::dm_thin {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kStateDirectory[] = ".dm-thin";

void Log(const std::string& message) { LogWarning("dm-thin: " + message); }

}  // namespace

DmThinBackend::DmThinBackend(const DmThinConfig& config, UniqueFd root_fd, std::string reason,
                             std::unique_ptr<ThinLedger> ledger, ThinPool pool, const DeviceMapper& device_mapper,
                             const VolumeFilesystem& filesystem)
    : tree::DirectoryBackend(config.data_root, std::move(root_fd), std::move(reason)),
      config_(config),
      ledger_(std::move(ledger)),
      pool_(std::move(pool)),
      dm_(device_mapper),
      filesystem_(filesystem) {}

Result<std::unique_ptr<DmThinBackend>> DmThinBackend::Open(const DmThinConfig& config, std::string reason,
                                                           DmThinSystem system) {
  const DeviceMapper& device_mapper = system.device_mapper ? *system.device_mapper : KernelDeviceMapper();
  const VolumeFilesystem& filesystem = system.filesystem ? *system.filesystem : Ext4Volumes();
  FE_RETURN_IF_ERROR(ValidateDmThinConfig(config));
  std::string why;
  if (!DeviceMapperAvailable(&why)) {
    return Status::Unsupported("storage backend dm-thin for " + config.data_root + ": " + why);
  }
  Result<UniqueFd> root_fd = tree::OpenDataRoot(config.data_root);
  if (!root_fd.ok()) return root_fd.status();
  const std::string state_dir = JoinPath(config.data_root, kStateDirectory);
  if (::mkdirat(root_fd->get(), kStateDirectory, 0700) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "create", state_dir);
  }
  const std::string prefix = JoinPath(state_dir, config.pool_name);
  Result<std::unique_ptr<ThinLedger>> ledger = ThinLedger::Open(prefix + ".json");
  if (!ledger.ok()) return ledger.status();
  Result<ThinPool> pool = ThinPool::Activate(config, prefix, device_mapper);
  if (!pool.ok()) return pool.status();
  std::unique_ptr<DmThinBackend> backend(new DmThinBackend(
      config, std::move(*root_fd), std::move(reason), std::move(*ledger), std::move(*pool), device_mapper, filesystem));
  backend->Reconcile();
  return backend;
}

Result<std::unique_ptr<DmThinBackend>> OpenDmThinBackend(const DmThinConfig& config) {
  std::string devices = config.data_device.empty()
                            ? "loop devices over sparse images in " + JoinPath(config.data_root, kStateDirectory)
                            : "data " + config.data_device + ", metadata " + config.metadata_device;
  return DmThinBackend::Open(config, "dm-thin pool " + config.pool_name + " on " + devices);
}

BackendCapabilities DmThinBackend::Capabilities() const {
  return BackendCapabilities{.shares_data = true, .constant_time_clone = true, .quiesce_origin = true};
}

std::string DmThinBackend::DmName(const std::string& volume) const { return config_.pool_name + "-" + volume; }

std::string DmThinBackend::DevicePath(const std::string& volume) const { return MapperPath(DmName(volume)); }

Result<PoolStatus> DmThinBackend::PoolHealth() const { return pool_.ReadStatus(); }

Status DmThinBackend::CheckRoomFor(const std::string& what) const {
  Result<PoolStatus> status = pool_.ReadStatus();
  if (!status.ok()) return status.status().Annotate("refusing to " + what);
  return CheckPoolFill(pool_.name(), *status, config_.fill_threshold).Annotate("refusing to " + what);
}

Status DmThinBackend::CheckNewName(const std::string& volume) const {
  FE_RETURN_IF_ERROR(ValidateVolumeName(volume));
  Result<std::string> dm_name = ThinDeviceName(config_.pool_name, volume);
  if (!dm_name.ok()) return dm_name.status();
  if (std::optional<ThinRecord> record = ledger_->Find(volume)) {
    if (record->state == ThinState::kReady) return AlreadyExists(volume);
    return Status::Busy("volume " + Path(volume) + " has an unfinished " + std::string(ThinStateName(record->state)) +
                        " operation (thin id " + std::to_string(record->id) + "), retried at the next open");
  }
  struct stat st;
  if (::fstatat(root_fd(), volume.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return AlreadyExists(volume);
  // A device of the name the new volume needs is not ours to adopt (nor to remove on rollback).
  Result<DmDeviceInfo> device = dm_.Info(*dm_name);
  if (!device.ok()) return device.status();
  if (device->exists) {
    return Status::AlreadyExists("volume " + Path(volume) + ": device-mapper device " + *dm_name +
                                 " already exists but the ledger has no such volume");
  }
  return Status::Ok();
}

Status DmThinBackend::Activate(const std::string& volume, const ThinRecord& record) {
  const std::string name = DmName(volume);
  Result<DmDeviceInfo> info = dm_.Info(name);
  if (!info.ok()) return info.status();
  // A daemon killed while it held the volume suspended (for a snapshot of it) left it so: I/O to it,
  // and anything touching its filesystem, would hang until it is resumed.
  if (info->exists && info->suspended) return dm_.Resume(name).Annotate("resume volume " + volume + ", left suspended");
  if (info->exists) return Status::Ok();
  return dm_.Create(name, {ThinTable(pool_.device_number(), record.id, record.sectors)})
      .Annotate("activate volume " + volume + " (thin id " + std::to_string(record.id) + ")");
}

Status DmThinBackend::MountVolume(const std::string& volume) {
  if (::mkdirat(root_fd(), volume.c_str(), 0755) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "create the mount point of volume", Path(volume));
  }
  Result<bool> mounted = filesystem_.Mounted(Path(volume));
  if (!mounted.ok()) return mounted.status();
  if (*mounted) return Status::Ok();
  return filesystem_.Mount(DevicePath(volume), Path(volume));
}

Status DmThinBackend::ExplainCreateFailure(Status created, uint32_t id, const std::string& what) const {
  if (created.sys_errno() != EEXIST) return created.Annotate(what);
  return created.Annotate(what + ": thin id " + std::to_string(id) + " already exists in pool " + pool_.name() +
                          " but ledger " + ledger_->path() +
                          " does not record it (a lost or foreign ledger?); "
                          "that device is left alone and the next attempt uses the next id");
}

Status DmThinBackend::DeleteThinId(uint32_t id) {
  Status deleted = pool_.Message(DeleteMessage(id));
  if (deleted.sys_errno() == ENODATA) return Status::Ok();  // never created, or deleted before a crash
  return deleted;
}

// Only an empty directory goes: after the unmount the mount point holds nothing, and anything else
// under the volume's name is not ours to delete.
Status DmThinBackend::RemoveMountPoint(const std::string& volume) {
  if (::unlinkat(root_fd(), volume.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return Status::Ok();
  return Status::FromErrno(errno, "remove the mount point", Path(volume));
}

Status DmThinBackend::Discard(const std::string& volume, const ThinRecord& record, bool delete_id) {
  FE_RETURN_IF_ERROR(filesystem_.Unmount(Path(volume)));
  Result<DmDeviceInfo> info = dm_.Info(DmName(volume));
  if (!info.ok()) return info.status();
  if (info->exists) FE_RETURN_IF_ERROR(dm_.Remove(DmName(volume)));
  if (delete_id) FE_RETURN_IF_ERROR(DeleteThinId(record.id));
  FE_RETURN_IF_ERROR(RemoveMountPoint(volume));
  return ledger_->Erase(volume);
}

void DmThinBackend::Reconcile() {
  for (const auto& [volume, record] : ledger_->Records()) {
    const std::string what = "volume " + volume + " (thin id " + std::to_string(record.id) + ", " +
                             std::string(ThinStateName(record.state)) + ")";
    if (record.state == ThinState::kReady) {
      // After a reboot neither the device nor its mount exists; after a daemon restart both do.
      Status active = Activate(volume, record);
      if (active.ok()) active = MountVolume(volume);
      if (!active.ok()) Log("recovery could not activate and mount " + what + ": " + active.message());
      continue;
    }
    // Whether create_thin/create_snap reached the kernel is unknown: the id was reserved for this
    // operation, so deleting it is safe either way.
    Status discarded = Discard(volume, record, /*delete_id=*/true);
    if (discarded.ok()) {
      Log("recovery " +
          std::string(record.state == ThinState::kCreating ? "undid the unfinished creation of "
                                                           : "finished removing ") +
          what);
    } else {
      Log("recovery could not clean up " + what + " (retried at the next open): " + discarded.message());
    }
  }
}

Status DmThinBackend::Create(const std::string& volume) {
  return CreateSized(volume, config_.volume_size_bytes / kSectorBytes);
}

Result<CloneReport> DmThinBackend::Import(const std::string& source_dir, const std::string& volume) {
  return ImportWith(source_dir, volume, [&](int source_fd) -> Status {
    FE_RETURN_IF_ERROR(CheckNewName(volume));
    FE_ASSIGN_OR_RETURN(VolumeUsage source, tree::MeasureTree(source_fd, source_dir));
    FE_ASSIGN_OR_RETURN(PoolStatus pool, pool_.ReadStatus());
    const uint64_t block_bytes = uint64_t{config_.block_size_sectors} * kSectorBytes;
    const uint64_t blocks = (source.allocated_bytes + block_bytes - 1) / block_bytes;
    FE_RETURN_IF_ERROR(CheckPoolRoomFor(
        pool_.name(), pool, config_.fill_threshold, blocks,
        "importing " + source_dir + " (" + std::to_string(source.allocated_bytes) + " bytes of data)"));
    return CreateSized(volume, ImportVolumeBytes(config_, source.logical_bytes) / kSectorBytes);
  });
}

Result<std::optional<PoolUsage>> DmThinBackend::Pool() const {
  FE_ASSIGN_OR_RETURN(PoolStatus status, pool_.ReadStatus());
  constexpr uint64_t kMetadataBlockBytes = 4096;
  const uint64_t block_bytes = uint64_t{config_.block_size_sectors} * kSectorBytes;
  PoolUsage usage{.name = pool_.name(),
                  .data_used_bytes = status.data_used * block_bytes,
                  .data_total_bytes = status.data_total * block_bytes,
                  .metadata_used_bytes = status.metadata_used * kMetadataBlockBytes,
                  .metadata_total_bytes = status.metadata_total * kMetadataBlockBytes,
                  .fill_threshold = config_.fill_threshold,
                  .mode = status.needs_check                         ? "needs-check"
                          : status.mode == PoolMode::kReadOnly       ? "read-only"
                          : status.mode == PoolMode::kOutOfDataSpace ? "out-of-data-space"
                                                                     : "read-write"};
  return std::optional<PoolUsage>(std::move(usage));
}

Status DmThinBackend::CreateSized(const std::string& volume, uint64_t sectors) {
  FE_RETURN_IF_ERROR(CheckNewName(volume));
  FE_RETURN_IF_ERROR(CheckRoomFor("create volume " + Path(volume)));
  Result<uint32_t> id = ledger_->BeginCreate(volume, sectors, std::nullopt);
  if (!id.ok()) return id.status();
  const ThinRecord record{.id = *id, .state = ThinState::kCreating, .sectors = sectors, .origin = std::nullopt};
  bool made = false;  // create_thin succeeded: the id is ours to delete on rollback
  // Every early return rolls back; a failed undo is logged and retried at the next open.
  Reverter undo;
  undo.Add("discard dm-thin volume " + volume, [&] { return Discard(volume, record, made); });

  FE_RETURN_IF_ERROR(ExplainCreateFailure(pool_.Message(CreateThinMessage(*id)), *id, "create volume " + volume));
  made = true;
  FE_RETURN_IF_ERROR(Activate(volume, record));
  FE_RETURN_IF_ERROR(filesystem_.Format(DevicePath(volume)).Annotate("create volume " + volume));
  if (::mkdirat(root_fd(), volume.c_str(), 0755) != 0) return Status::FromErrno(errno, "create volume", Path(volume));
  FE_RETURN_IF_ERROR(filesystem_.Mount(DevicePath(volume), Path(volume)).Annotate("create volume " + volume));
  // A new volume is an empty directory, like every backend's (fsck makes lost+found again if needed).
  (void)::rmdir((Path(volume) + "/lost+found").c_str());
  FE_RETURN_IF_ERROR(ledger_->SetState(volume, ThinState::kReady));
  undo.Commit();
  return Status::Ok();
}

Result<CloneReport> DmThinBackend::Clone(const std::string& parent, const std::string& volume) {
  FE_RETURN_IF_ERROR(ValidateVolumeName(parent));
  FE_RETURN_IF_ERROR(CheckNewName(volume));
  std::optional<ThinRecord> origin = ledger_->Find(parent);
  if (!origin || origin->state != ThinState::kReady) return NotFound(parent);
  FE_RETURN_IF_ERROR(CheckRoomFor("clone " + Path(parent) + " to " + Path(volume)));

  const Clock::time_point start = Clock::now();
  Result<uint32_t> id = ledger_->BeginCreate(volume, origin->sectors, origin->id);
  if (!id.ok()) return id.status();
  const ThinRecord record{.id = *id, .state = ThinState::kCreating, .sectors = origin->sectors, .origin = origin->id};
  bool made = false;  // create_snap succeeded: the id is ours to delete on rollback
  // Every early return rolls back; a failed undo is logged and retried at the next open.
  Reverter undo;
  undo.Add("discard dm-thin volume " + volume, [&] { return Discard(volume, record, made); });

  std::chrono::nanoseconds suspended_for{0};
  {
    std::lock_guard lock(snapshot_mutex_);
    Result<DmDeviceInfo> parent_device = dm_.Info(DmName(parent));
    if (!parent_device.ok()) return parent_device.status();
    // An active origin is suspended so the snapshot sees its writes flushed and none in flight; one
    // that someone else suspended already is left to them.
    std::optional<SuspendedDevice> suspended;
    const Clock::time_point suspend_start = Clock::now();
    if (parent_device->exists && !parent_device->suspended) {
      Result<SuspendedDevice> held = SuspendedDevice::Suspend(dm_, DmName(parent));
      if (!held.ok()) return held.status().Annotate("clone " + parent + " to " + volume);
      suspended.emplace(std::move(*held));
    }
    Status snapshot = ExplainCreateFailure(pool_.Message(CreateSnapMessage(*id, origin->id)), *id,
                                           "clone " + parent + " to " + volume);
    made = snapshot.ok();
    Status resumed = suspended ? suspended->Resume() : Status::Ok();
    suspended_for = Clock::now() - suspend_start;
    // A stuck origin is the worse failure: it is reported even when the snapshot failed too.
    FE_RETURN_IF_ERROR(resumed.Annotate("clone " + parent + " to " + volume + ": origin left suspended"));
    FE_RETURN_IF_ERROR(snapshot);
  }
  const Clock::time_point snapshot_done = Clock::now();

  FE_RETURN_IF_ERROR(Activate(volume, record));
  if (::mkdirat(root_fd(), volume.c_str(), 0755) != 0) {
    return Status::FromErrno(errno, "clone " + parent + " to volume", Path(volume));
  }
  FE_RETURN_IF_ERROR(filesystem_.Mount(DevicePath(volume), Path(volume)).Annotate("clone " + parent + " to " + volume));
  FE_RETURN_IF_ERROR(ledger_->SetState(volume, ThinState::kReady));
  undo.Commit();

  // The snapshot covers every file: nothing was walked or copied.
  CloneReport report;
  report.mechanism = "dm-thin-snapshot";
  report.note = "thin snapshot id " + std::to_string(*id) + " of id " + std::to_string(origin->id) +
                " (origin suspended and its filesystem frozen " + std::to_string(suspended_for.count() / 1000) +
                " us), mounted at " + Path(volume);
  report.phases.prepare = snapshot_done - start;
  report.total = Clock::now() - start;
  return report;
}

Status DmThinBackend::Remove(const std::string& volume) {
  FE_RETURN_IF_ERROR(ValidateVolumeName(volume));
  std::optional<ThinRecord> record = ledger_->Find(volume);
  if (!record || record->state == ThinState::kCreating) return NotFound(volume);
  if (record->state == ThinState::kReady) {
    const std::string name = DmName(volume);
    // Unmounting and deactivating change nothing lasting: on failure the volume is mounted again
    // (and a crash in between is repaired by activation and mount at the next open).
    FE_RETURN_IF_ERROR(filesystem_.Unmount(Path(volume)).Annotate("remove volume " + volume));
    Result<DmDeviceInfo> info = dm_.Info(name);
    if (!info.ok()) return info.status();
    if (info->exists && info->open_count > 0) {
      Status busy = Status::Busy("remove volume " + Path(volume) + ": its device " + DevicePath(volume) + " is open (" +
                                 std::to_string(info->open_count) + " users)");
      if (Status remounted = MountVolume(volume); !remounted.ok()) return busy.Annotate(remounted.ToString());
      return busy;
    }
    if (info->exists) FE_RETURN_IF_ERROR(dm_.Remove(name).Annotate("remove volume " + volume));
    FE_RETURN_IF_ERROR(ledger_->SetState(volume, ThinState::kRemoving));
    record->state = ThinState::kRemoving;
  }
  return Discard(volume, *record, /*delete_id=*/true).Annotate("remove volume " + volume);
}

Result<VolumeUsage> DmThinBackend::Usage(const std::string& volume) {
  FE_RETURN_IF_ERROR(ValidateVolumeName(volume));
  std::optional<ThinRecord> record = ledger_->Find(volume);
  if (!record || record->state != ThinState::kReady) return NotFound(volume);
  Result<VolumeUsage> usage = tree::DirectoryBackend::Usage(volume);
  if (!usage.ok()) return usage.status();
  Result<std::vector<TableLine>> lines = dm_.TargetStatus(DmName(volume));
  if (!lines.ok()) return lines.status();
  if (lines->size() != 1) return Status::Io("thin device " + DmName(volume) + " has no single target");
  Result<ThinStatus> thin = ParseThinStatus(DmName(volume), (*lines)[0].params);
  if (!thin.ok()) return thin.status();
  // The files' blocks are the device's: what the pool maps for it is what it holds.
  usage->allocated_bytes = thin->mapped_sectors * kSectorBytes;
  usage->shared_bytes.reset();
  usage->method = "thin-pool mapped blocks";
  return usage;
}

Result<std::vector<std::string>> DmThinBackend::List() {
  std::vector<std::string> volumes;
  for (const auto& [volume, record] : ledger_->Records()) {
    if (record.state == ThinState::kReady) volumes.push_back(volume);
  }
  return volumes;  // the ledger's map is sorted
}

Status DmThinBackend::Deactivate() {
  Status first;
  for (const auto& [volume, record] : ledger_->Records()) {
    Status removed = filesystem_.Unmount(Path(volume));
    Result<DmDeviceInfo> info = dm_.Info(DmName(volume));
    if (removed.ok()) removed = !info.ok() ? info.status() : info->exists ? dm_.Remove(DmName(volume)) : Status::Ok();
    if (!removed.ok() && first.ok()) first = removed;
  }
  Status pool = pool_.Deactivate();
  if (!pool.ok() && first.ok()) first = pool;
  return first;
}

}  // namespace fe::storage::dm_thin
