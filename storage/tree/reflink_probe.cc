#include "storage/tree/reflink_probe.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "base/unique_fd.h"

namespace fe::storage::tree {
namespace {

constexpr uint64_t kXfsMagic = 0x58465342;

// An unnamed scratch file (O_TMPFILE) vanishes by itself; a named one is unlinked at once.
Result<UniqueFd> OpenScratch(int dir_fd, const std::string& dir, int index) {
  int fd = ::openat(dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return UniqueFd(fd);
  std::string name = ".forkengine-probe-" + std::to_string(::getpid()) + "-" + std::to_string(index);
  fd = ::openat(dir_fd, name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::FromErrno(errno, "create probe file in", dir);
  ::unlinkat(dir_fd, name.c_str(), 0);
  return UniqueFd(fd);
}

}  // namespace

std::string FilesystemName(uint64_t magic) {
  switch (magic) {
    case kXfsMagic: return "xfs";
    case BTRFS_SUPER_MAGIC: return "btrfs";
    case EXT4_SUPER_MAGIC: return "ext4";
    case TMPFS_MAGIC: return "tmpfs";
    case OVERLAYFS_SUPER_MAGIC: return "overlay";
    case 0x2fc12fc1: return "zfs";
    case 0x6a656a63: return "fakeowner";
    case 0x65735546: return "fuse";
    case NFS_SUPER_MAGIC: return "nfs";
    default: {
      char hex[24];
      std::snprintf(hex, sizeof(hex), "0x%llx", static_cast<unsigned long long>(magic));
      return hex;
    }
  }
}

Result<FilesystemProbe> ProbeFilesystem(int dir_fd) { return ProbeFilesystem(dir_fd, "."); }

Result<FilesystemProbe> ProbeFilesystem(int dir_fd, const std::string& dir) {
  FilesystemProbe probe;
  struct statfs fs {};
  if (::fstatfs(dir_fd, &fs) != 0) return Status::FromErrno(errno, "statfs", dir);
  probe.magic = static_cast<uint64_t>(fs.f_type);
  probe.filesystem = FilesystemName(probe.magic);

  // A full filesystem must not keep forkd from starting (deleting instances is how space is freed):
  // without room for a scratch file the type decides, without room for its data an empty one is cloned.
  auto full = [](int err) { return err == ENOSPC || err == EDQUOT; };
  Result<UniqueFd> source = OpenScratch(dir_fd, dir, 0);
  Result<UniqueFd> target = source.ok() ? OpenScratch(dir_fd, dir, 1) : source.status();
  if (!target.ok()) {
    if (!full(target.status().sys_errno())) return target.status();
    probe.full = true;
    probe.reflink = probe.magic == BTRFS_SUPER_MAGIC || probe.magic == kXfsMagic;
    probe.reason = probe.filesystem + " is full (no room for a scratch file): reflink " +
                   (probe.reflink ? "assumed, as " + probe.filesystem + " has it" : "not assumed") + ", not probed";
    return probe;
  }
  char block[4096];
  std::memset(block, 0x5a, sizeof(block));
  std::string what = "a scratch file";
  if (::pwrite(source->get(), block, sizeof(block), 0) != static_cast<ssize_t>(sizeof(block))) {
    if (!full(errno)) return Status::FromErrno(errno, "write probe file in", dir);
    probe.full = true;
    what = "an empty scratch file (the filesystem is full)";
  }
  if (::ioctl(target->get(), FICLONE, source->get()) == 0) {
    probe.reflink = true;
    probe.reason = "FICLONE of " + what + " on " + probe.filesystem + " succeeded";
  } else {
    probe.reason = "FICLONE of " + what + " on " + probe.filesystem + " failed: " + std::strerror(errno);
  }
  return probe;
}

Result<FilesystemProbe> ProbeFilesystem(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Status::FromErrno(errno, "open", dir);
  return ProbeFilesystem(fd.get(), dir);
}

}  // namespace fe::storage::tree
