#include "storage/btrfs/btrfs_backend.h"

#include <btrfsutil.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/log.h"
#include "base/fs_util.h"
#include "storage/btrfs/subvolume.h"

namespace fe::storage::btrfs {
namespace {

std::string TemporaryName(const std::string& volume) {
  static std::atomic<uint64_t> counter{0};
  return "." + volume + ".forkengine-tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

}  // namespace

Result<std::unique_ptr<BtrfsBackend>> BtrfsBackend::Open(const std::string& root, std::string reason,
                                                         size_t snapshot_min_entries) {
  Result<UniqueFd> fd = tree::OpenDataRoot(root);
  if (!fd.ok()) return fd.status();
  struct statfs fs {};
  if (::fstatfs(fd->get(), &fs) != 0) return Status::FromErrno(errno, "statfs", root);
  if (static_cast<uint64_t>(fs.f_type) != BTRFS_SUPER_MAGIC) {
    return Status::Unsupported("storage backend btrfs needs a btrfs data root; " + root + " is not on btrfs");
  }
  return std::unique_ptr<BtrfsBackend>(new BtrfsBackend(root, std::move(*fd), std::move(reason), snapshot_min_entries));
}

BackendCapabilities BtrfsBackend::Capabilities() const {
  return BackendCapabilities{.shares_data = true, .constant_time_clone = true, .quiesce_origin = false};
}

Status BtrfsBackend::Create(const std::string& volume) {
  FE_RETURN_IF_ERROR(ValidateVolumeName(volume));
  errno = 0;
  btrfs_util_error error = btrfs_util_create_subvolume_fd(root_fd(), volume.c_str(), 0, nullptr, nullptr);
  if (error == BTRFS_UTIL_OK) return Status::Ok();
  if (errno == EEXIST) return AlreadyExists(volume);
  return BtrfsError(error, "create subvolume", Path(volume));
}

Result<bool> BtrfsBackend::IsSubvolume(const std::string& volume) {
  FE_RETURN_IF_ERROR(ValidateVolumeName(volume));
  Result<UniqueFd> dir = OpenBeneath(root_fd(), volume, O_RDONLY | O_DIRECTORY, 0, Path(volume));
  if (!dir.ok()) return dir.status();
  errno = 0;
  btrfs_util_error error = btrfs_util_is_subvolume_fd(dir->get());
  if (error == BTRFS_UTIL_OK) return true;
  if (error == BTRFS_UTIL_ERROR_NOT_SUBVOLUME) return false;
  return BtrfsError(error, "check subvolume", Path(volume));
}

Result<CloneReport> BtrfsBackend::Snapshot(int parent_fd, const std::string& volume, bool read_only) {
  // A snapshot appears whole or not at all, so it is made under its final name directly.
  return SnapshotSubvolume(parent_fd, root_fd(), volume, read_only, "volume " + Path(volume));
}

Result<CloneReport> BtrfsBackend::ReflinkIntoSubvolume(const std::string& parent, const std::string& volume) {
  const std::string temporary = TemporaryName(volume);
  errno = 0;
  btrfs_util_error error = btrfs_util_create_subvolume_fd(root_fd(), temporary.c_str(), 0, nullptr, nullptr);
  if (error != BTRFS_UTIL_OK) return BtrfsError(error, "create subvolume", Path(temporary));
  auto abandon = [&](Status status) -> Status {
    Status deleted = DeleteSubvolume(temporary);
    if (!deleted.ok()) LogError(deleted.message());
    return status;
  };
  Result<UniqueFd> target = OpenBeneath(root_fd(), temporary, O_RDONLY | O_DIRECTORY, 0, Path(temporary));
  if (!target.ok()) return abandon(target.status());
  tree::CloneOptions options;
  options.data_mode = tree::DataMode::kReflink;
  Result<CloneReport> report = tree::CloneContents(root_fd(), parent, target->get(), options);
  if (!report.ok()) return abandon(report.status());
  if (::renameat2(root_fd(), temporary.c_str(), root_fd(), volume.c_str(), RENAME_NOREPLACE) != 0) {
    int err = errno;
    return abandon(err == EEXIST ? AlreadyExists(volume)
                                 : Status::FromErrno(err, "rename clone into place as", Path(volume)));
  }
  report->note =
      "source " + Path(parent) + " is not a subvolume root: cloned file by file with reflink into a new subvolume";
  return report;
}

Result<CloneReport> BtrfsBackend::Clone(const std::string& parent, const std::string& volume) {
  FE_RETURN_IF_ERROR(ValidateVolumeName(parent));
  FE_RETURN_IF_ERROR(ValidateVolumeName(volume));
  struct stat existing;
  if (::fstatat(root_fd(), volume.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0) return AlreadyExists(volume);
  Result<UniqueFd> parent_fd = OpenBeneath(root_fd(), parent, O_RDONLY | O_DIRECTORY, 0, Path(parent));
  if (!parent_fd.ok()) {
    if (parent_fd.status().code() == ErrorCode::kNotFound) return NotFound(parent);
    return parent_fd.status();
  }
  errno = 0;
  btrfs_util_error kind = btrfs_util_is_subvolume_fd(parent_fd->get());
  if (kind != BTRFS_UTIL_OK && kind != BTRFS_UTIL_ERROR_NOT_SUBVOLUME) {
    return BtrfsError(kind, "check subvolume", Path(parent));
  }
  if (kind == BTRFS_UTIL_ERROR_NOT_SUBVOLUME) return ReflinkIntoSubvolume(parent, volume);
  if (snapshot_min_entries_ > 0) {
    Result<size_t> entries = CountEntries(parent_fd->get(), snapshot_min_entries_, Path(parent));
    if (!entries.ok()) return entries.status();
    if (*entries < snapshot_min_entries_) {
      tree::CloneOptions options;
      options.data_mode = tree::DataMode::kReflink;
      Result<CloneReport> report = tree::CloneTree(root_fd(), parent, root_fd(), volume, options);
      if (report.ok()) {
        report->note = "small tree (" + std::to_string(*entries) + " entries, crossover " +
                       std::to_string(snapshot_min_entries_) + "): reflink is cheaper than a snapshot";
      }
      return report;
    }
  }
  return Snapshot(parent_fd->get(), volume, false);
}

Result<CloneReport> BtrfsBackend::CloneReadOnly(const std::string& parent, const std::string& volume) {
  FE_RETURN_IF_ERROR(ValidateVolumeName(parent));
  FE_RETURN_IF_ERROR(ValidateVolumeName(volume));
  Result<bool> subvolume = IsSubvolume(parent);
  if (!subvolume.ok()) return subvolume.status();
  if (!*subvolume) {
    return Status::Unsupported("read-only snapshot of " + Path(parent) + ": not a subvolume root");
  }
  Result<UniqueFd> parent_fd = OpenBeneath(root_fd(), parent, O_RDONLY | O_DIRECTORY, 0, Path(parent));
  if (!parent_fd.ok()) return parent_fd.status();
  return Snapshot(parent_fd->get(), volume, true);
}

Status BtrfsBackend::DeleteSubvolume(const std::string& name) {
  Result<UniqueFd> dir = OpenBeneath(root_fd(), name, O_RDONLY | O_DIRECTORY, 0, Path(name));
  if (!dir.ok()) return dir.status();
  errno = 0;
  btrfs_util_error kind = btrfs_util_is_subvolume_fd(dir->get());
  if (kind == BTRFS_UTIL_ERROR_NOT_SUBVOLUME) return RemoveTree(root_fd(), name);
  if (kind != BTRFS_UTIL_OK) return BtrfsError(kind, "check subvolume", Path(name));
  // Read-only subvolumes (this one, or nested ones) refuse the unlinks that deletion needs.
  btrfs_util_subvolume_iterator* iterator = nullptr;
  if (btrfs_util_create_subvolume_iterator_fd(dir->get(), 0, BTRFS_UTIL_SUBVOLUME_ITERATOR_POST_ORDER, &iterator) ==
      BTRFS_UTIL_OK) {
    char* nested = nullptr;
    while (btrfs_util_subvolume_iterator_next(iterator, &nested, nullptr) == BTRFS_UTIL_OK) {
      UniqueFd nested_fd(::openat(dir->get(), nested, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (nested_fd) (void)btrfs_util_set_subvolume_read_only_fd(nested_fd.get(), false);
      std::free(nested);
    }
    btrfs_util_destroy_subvolume_iterator(iterator);
  }
  errno = 0;
  btrfs_util_error error = btrfs_util_set_subvolume_read_only_fd(dir->get(), false);
  if (error != BTRFS_UTIL_OK) return BtrfsError(error, "clear read-only flag of", Path(name));
  dir->reset();
  errno = 0;
  error = btrfs_util_delete_subvolume_fd(root_fd(), name.c_str(), BTRFS_UTIL_DELETE_SUBVOLUME_RECURSIVE);
  if (error != BTRFS_UTIL_OK) return BtrfsError(error, "delete subvolume", Path(name));
  return Status::Ok();
}

Status BtrfsBackend::Remove(const std::string& volume) {
  Result<std::string> doomed = RenameAway(volume);
  if (!doomed.ok()) return doomed.status();
  return DeleteSubvolume(*doomed);
}

}  // namespace fe::storage::btrfs
