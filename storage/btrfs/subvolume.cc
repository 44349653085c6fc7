#include "storage/btrfs/subvolume.h"

#include <btrfsutil.h>
#include <linux/magic.h>
#include <sys/vfs.h>

#include <cerrno>
#include <chrono>

namespace fe::storage::btrfs {

Status BtrfsError(btrfs_util_error error, std::string_view operation, std::string_view path) {
  int err = errno;
  Status status = Status::FromErrno(err == 0 ? EIO : err, operation, path);
  return Status(status.code(), status.message() + " (" + btrfs_util_strerror(error) + ")");
}

Result<bool> IsSubvolumeRoot(int dir_fd, std::string_view display) {
  struct statfs fs {};
  if (::fstatfs(dir_fd, &fs) != 0) return Status::FromErrno(errno, "statfs", display);
  if (static_cast<uint64_t>(fs.f_type) != BTRFS_SUPER_MAGIC) return false;
  errno = 0;
  btrfs_util_error error = btrfs_util_is_subvolume_fd(dir_fd);
  if (error == BTRFS_UTIL_OK) return true;
  if (error == BTRFS_UTIL_ERROR_NOT_SUBVOLUME) return false;
  return BtrfsError(error, "check subvolume", display);
}

Result<CloneReport> SnapshotSubvolume(int source_fd, int target_parent_fd, const std::string& name, bool read_only,
                                      std::string_view target_display) {
  const auto start = std::chrono::steady_clock::now();
  int flags = read_only ? BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY : BTRFS_UTIL_CREATE_SNAPSHOT_RECURSIVE;
  errno = 0;
  btrfs_util_error error =
      btrfs_util_create_snapshot_fd2(source_fd, target_parent_fd, name.c_str(), flags, nullptr, nullptr);
  if (error != BTRFS_UTIL_OK) {
    if (errno == EEXIST) return Status::AlreadyExists(std::string(target_display) + " already exists");
    return BtrfsError(error, "snapshot into", target_display);
  }
  CloneReport report;
  report.mechanism = read_only ? "btrfs-snapshot-ro" : "btrfs-snapshot";
  report.io_engine = "libbtrfsutil";
  report.note = "subvolume snapshot: every inode is shared, none is walked";
  report.total = std::chrono::steady_clock::now() - start;
  report.phases.tree = report.total;
  return report;
}

}  // namespace fe::storage::btrfs
