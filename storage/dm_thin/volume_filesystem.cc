#include "storage/dm_thin/volume_filesystem.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>

#include "base/process.h"

namespace fe::storage::dm_thin {
namespace {

class Ext4 final : public VolumeFilesystem {
 public:
  Status Format(const std::string& device) const override {
    // Lazy tables and journal: only the superblocks, bitmaps and the journal's header are written.
    // nodiscard: a new thin device maps nothing, so a discard of it is only time.
    return RunProcessChecked(
               {"mke2fs", "-q", "-F", "-t", "ext4", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", device})
        .Annotate("format " + device);
  }

  Status Mount(const std::string& device, const std::string& dir) const override {
    if (::mount(device.c_str(), dir.c_str(), "ext4", MS_NOATIME, "discard,noinit_itable") != 0) {
      return Status::FromErrno(errno, "mount " + device + " on", dir);
    }
    return Status::Ok();
  }

  Status Unmount(const std::string& dir) const override {
    if (::umount2(dir.c_str(), UMOUNT_NOFOLLOW) == 0) return Status::Ok();
    const int err = errno;
    if (err == EINVAL || err == ENOENT) return Status::Ok();  // not a mount point (or gone)
    if (err == EBUSY) {
      return Status::Busy("unmount " + dir + ": files on it are in use (a running VM's disk or memory file?)");
    }
    return Status::FromErrno(err, "unmount", dir);
  }

  Result<bool> Mounted(const std::string& dir) const override {
    // A mount point is on another device than its parent directory.
    struct stat here {
    }, parent{};
    if (::lstat(dir.c_str(), &here) != 0) {
      if (errno == ENOENT) return false;
      return Status::FromErrno(errno, "stat", dir);
    }
    const std::string up = dir + "/..";
    if (::stat(up.c_str(), &parent) != 0) return Status::FromErrno(errno, "stat", up);
    return S_ISDIR(here.st_mode) && here.st_dev != parent.st_dev;
  }
};

}  // namespace

const VolumeFilesystem& Ext4Volumes() {
  static const Ext4 ext4;
  return ext4;
}

}  // namespace fe::storage::dm_thin
