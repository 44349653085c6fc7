#include "storage/tree/metadata_copy.h"

#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace fe::storage::tree {
namespace {

mode_t ReadUmask() {
  // /proc/self/status reports the umask without the race of umask(2)'s set-and-restore.
  FILE* status = std::fopen("/proc/self/status", "re");
  mode_t mask = 022;
  if (status == nullptr) return mask;
  char line[256];
  while (std::fgets(line, sizeof(line), status) != nullptr) {
    unsigned value = 0;
    if (std::sscanf(line, "Umask: %o", &value) == 1) {
      mask = static_cast<mode_t>(value);
      break;
    }
  }
  std::fclose(status);
  return mask;
}

Status CopyXattrs(int source_fd, int target_fd, std::string_view display) {
  std::vector<char> names(1024);
  ssize_t length;
  while ((length = ::flistxattr(source_fd, names.data(), names.size())) < 0 && errno == ERANGE) {
    ssize_t needed = ::flistxattr(source_fd, nullptr, 0);
    if (needed < 0) break;
    names.resize(static_cast<size_t>(needed) + 1);
  }
  if (length < 0) {
    if (errno == ENOTSUP) return Status::Ok();  // the source filesystem keeps no xattrs
    return Status::FromErrno(errno, "list xattrs of", display);
  }
  std::vector<char> value(256);
  for (ssize_t offset = 0; offset < length;) {
    const char* name = names.data() + offset;
    offset += static_cast<ssize_t>(std::strlen(name)) + 1;
    ssize_t size;
    while ((size = ::fgetxattr(source_fd, name, value.data(), value.size())) < 0 && errno == ERANGE) {
      ssize_t needed = ::fgetxattr(source_fd, name, nullptr, 0);
      if (needed < 0) break;
      value.resize(static_cast<size_t>(needed) + 1);
    }
    if (size < 0) {
      if (errno == ENODATA) continue;  // removed meanwhile
      return Status::FromErrno(errno, std::string("read xattr ") + name + " of", display);
    }
    if (::fsetxattr(target_fd, name, value.data(), static_cast<size_t>(size), 0) != 0) {
      return Status::FromErrno(errno, std::string("set xattr ") + name + " on", display);
    }
  }
  return Status::Ok();
}

}  // namespace

const CreationDefaults& CreationDefaults::Current() {
  static const CreationDefaults defaults = [] {
    return CreationDefaults{::geteuid(), ::getegid(), ReadUmask(), ::geteuid() == 0};
  }();
  return defaults;
}

Status CopyMetadata(int source_fd, int target_fd, const struct statx& source, mode_t created_mode,
                    std::string_view display) {
  const CreationDefaults& defaults = CreationDefaults::Current();
  bool chowned = false;
  if (source.stx_uid != defaults.uid || source.stx_gid != defaults.gid) {
    if (::fchown(target_fd, source.stx_uid, source.stx_gid) == 0) {
      chowned = true;
    } else if (defaults.privileged || errno != EPERM) {
      return Status::FromErrno(errno, "chown", display);
    }
  }
  mode_t mode = source.stx_mode & 07777;
  if (mode != created_mode || (chowned && (mode & (S_ISUID | S_ISGID)))) {
    if (::fchmod(target_fd, mode) != 0) return Status::FromErrno(errno, "chmod", display);
  }
  FE_RETURN_IF_ERROR(CopyXattrs(source_fd, target_fd, display));
  const struct timespec times[2] = {
      {source.stx_atime.tv_sec, source.stx_atime.tv_nsec},
      {source.stx_mtime.tv_sec, source.stx_mtime.tv_nsec},
  };
  if (::futimens(target_fd, times) != 0) return Status::FromErrno(errno, "set times of", display);
  return Status::Ok();
}

}  // namespace fe::storage::tree
