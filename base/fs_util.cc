#include "base/fs_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace fe {

bool IsSingleComponent(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

Result<UniqueFd> OpenBeneath(int dir_fd, const std::string& path, int flags, mode_t mode, std::string_view display) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd;
  do {
    fd = ::syscall(SYS_openat2, dir_fd, path.c_str(), &how, sizeof(how));
  } while (fd < 0 && errno == EAGAIN);
  if (fd < 0) return Status::FromErrno(errno, "open", display);
  return UniqueFd(static_cast<int>(fd));
}

Status ReadDirectory(int dir_fd, std::vector<DirectoryEntry>& entries, std::string_view display) {
  alignas(8) char buffer[32768];
  while (true) {
    ssize_t got = ::getdents64(dir_fd, buffer, sizeof(buffer));
    if (got < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read directory", display);
    }
    if (got == 0) return Status::Ok();
    for (ssize_t offset = 0; offset < got;) {
      auto* entry = reinterpret_cast<struct dirent64*>(buffer + offset);
      offset += entry->d_reclen;
      std::string_view name(entry->d_name);
      if (name == "." || name == "..") continue;
      entries.push_back(DirectoryEntry{std::string(name), entry->d_type});
    }
  }
}

Result<size_t> CountEntries(int dir_fd, size_t limit, std::string_view display) {
  std::vector<UniqueFd> pending;
  Result<UniqueFd> root = OpenBeneath(dir_fd, ".", O_RDONLY | O_DIRECTORY, 0, display);
  if (!root.ok()) return root.status();
  pending.push_back(std::move(*root));
  size_t count = 0;
  std::vector<DirectoryEntry> entries;
  while (!pending.empty() && count < limit) {
    UniqueFd dir = std::move(pending.back());
    pending.pop_back();
    entries.clear();
    FE_RETURN_IF_ERROR(ReadDirectory(dir.get(), entries, display));
    // Count a whole directory before descending: a wide tree reaches the limit without opening
    // any subdirectory.
    count += entries.size();
    if (count >= limit) break;
    for (const DirectoryEntry& entry : entries) {
      if (entry.type != DT_DIR) continue;
      Result<UniqueFd> child = OpenBeneath(dir.get(), entry.name, O_RDONLY | O_DIRECTORY, 0, display);
      if (!child.ok()) return child.status();
      pending.push_back(std::move(*child));
    }
  }
  return count;
}

std::string FdPath(int fd) {
  char link[64];
  std::snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  char target[4096];
  ssize_t n = ::readlink(link, target, sizeof(target));
  if (n <= 0) return "<fd " + std::to_string(fd) + ">";
  return std::string(target, static_cast<size_t>(n));
}

std::string JoinPath(std::string_view parent, std::string_view name) {
  if (parent.empty()) return std::string(name);
  std::string joined;
  joined.reserve(parent.size() + 1 + name.size());
  joined.append(parent).append("/").append(name);
  return joined;
}

namespace {

Status RemoveTreeAt(int parent_fd, const std::string& name, const std::string& display);

// Removes the contents of the open directory `dir_fd`, depth first, never following symlinks.
Status RemoveContents(int dir_fd, const std::string& display) {
  std::vector<DirectoryEntry> entries;
  FE_RETURN_IF_ERROR(ReadDirectory(dir_fd, entries, display));
  for (const DirectoryEntry& entry : entries) {
    std::string path = JoinPath(display, entry.name);
    if (entry.type != DT_DIR) {
      if (::unlinkat(dir_fd, entry.name.c_str(), 0) == 0 || errno == ENOENT) continue;
      if (errno != EISDIR) return Status::FromErrno(errno, "remove", path);
    }
    FE_RETURN_IF_ERROR(RemoveTreeAt(dir_fd, entry.name, path));
  }
  return Status::Ok();
}

Status RemoveTreeAt(int parent_fd, const std::string& name, const std::string& display) {
  Result<UniqueFd> dir = OpenBeneath(parent_fd, name, O_RDONLY | O_DIRECTORY, 0, display);
  if (!dir.ok()) {
    int err = dir.status().sys_errno();
    if (err == ENOTDIR || err == ELOOP) {  // a file or symlink, not a tree
      if (::unlinkat(parent_fd, name.c_str(), 0) == 0) return Status::Ok();
      return Status::FromErrno(errno, "remove", display);
    }
    return dir.status();
  }
  // A directory we may not write (mode 0555 as non-root) cannot be emptied; make it writable first.
  if (::faccessat(dir->get(), ".", W_OK | X_OK, AT_EACCESS) != 0) ::fchmod(dir->get(), 0700);
  FE_RETURN_IF_ERROR(RemoveContents(dir->get(), display));
  if (::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) != 0) {
    return Status::FromErrno(errno, "remove directory", display);
  }
  return Status::Ok();
}

}  // namespace

Status RemoveTree(int parent_fd, const std::string& name) {
  return RemoveTreeAt(parent_fd, name, JoinPath(FdPath(parent_fd), name));
}

Status MakeDirectories(const std::string& path, mode_t mode) {
  if (path.empty()) return Status::InvalidArgument("empty directory path");
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    std::string prefix = path.substr(0, slash);
    if (!prefix.empty() && ::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      return Status::FromErrno(errno, "mkdir", prefix);
    }
    if (slash == std::string::npos) break;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "stat", path);
  if (!S_ISDIR(st.st_mode)) return Status::FailedPrecondition(path + " is not a directory");
  return Status::Ok();
}

Status WriteAllAt(int fd, const void* data, size_t size, off_t offset, std::string_view display) {
  const char* bytes = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t written = ::pwrite(fd, bytes, size, offset);
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) return Status::FromErrno(errno, "write", display);
    if (written == 0) return Status::Io("write " + std::string(display) + ": no progress");
    bytes += written;
    size -= static_cast<size_t>(written);
    offset += written;
  }
  return Status::Ok();
}

Status ReadAllAt(int fd, void* data, size_t size, off_t offset, std::string_view display) {
  char* bytes = static_cast<char*>(data);
  while (size > 0) {
    ssize_t got = ::pread(fd, bytes, size, offset);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Status::FromErrno(errno, "read", display);
    if (got == 0) {
      return Status::InvalidArgument(std::string(display) + ": ends at byte " + std::to_string(offset) + ", before " +
                                     std::to_string(size) + " more bytes");
    }
    bytes += got;
    size -= static_cast<size_t>(got);
    offset += got;
  }
  return Status::Ok();
}

}  // namespace fe
