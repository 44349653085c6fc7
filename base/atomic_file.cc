#include "base/atomic_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/unique_fd.h"
#include "base/deferred_sync.h"

namespace fe {

Result<bool> IsRegularFile(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    return Status::FromErrno(errno, "stat", path);
  }
  return S_ISREG(st.st_mode);
}
namespace {

std::string ParentOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

Status WriteAll(int fd, std::string_view content, const std::string& display) {
  while (!content.empty()) {
    ssize_t wrote = ::write(fd, content.data(), content.size());
    if (wrote < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "write", display);
    }
    content.remove_prefix(static_cast<size_t>(wrote));
  }
  return Status::Ok();
}

// Writes, syncs and renames the temporary file; the caller removes it on failure.
Status WriteAndRename(int fd, const std::string& temp, const std::string& path, std::string_view content, mode_t mode,
                      bool sync) {
  struct stat existing {};
  if (::lstat(path.c_str(), &existing) == 0) {
    if (!S_ISREG(existing.st_mode)) {
      return Status::InvalidArgument("replace " + path + ": not a regular file");
    }
    mode = existing.st_mode & 07777;
    if (::fchown(fd, existing.st_uid, existing.st_gid) != 0) return Status::FromErrno(errno, "chown", temp);
  } else if (errno != ENOENT) {
    return Status::FromErrno(errno, "stat", path);
  }
  if (::fchmod(fd, mode) != 0) return Status::FromErrno(errno, "chmod", temp);
  FE_RETURN_IF_ERROR(WriteAll(fd, content, temp));
  if (sync && ::fsync(fd) != 0) return Status::FromErrno(errno, "fsync", temp);
  if (::rename(temp.c_str(), path.c_str()) != 0) return Status::FromErrno(errno, "rename to " + path, temp);
  return Status::Ok();
}

}  // namespace

Result<std::string> ReadSmallFile(const std::string& path, size_t limit) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return Status::FromErrno(errno, "open", path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + ": not a regular file");
  if (static_cast<uint64_t>(st.st_size) > limit) {
    return Status::InvalidArgument(path + ": " + std::to_string(st.st_size) + " bytes, more than the " +
                                   std::to_string(limit) + " this file may have");
  }
  std::string content;
  char buffer[65536];
  while (true) {
    ssize_t got = ::read(fd.get(), buffer, sizeof(buffer));
    if (got < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read", path);
    }
    if (got == 0) break;
    content.append(buffer, static_cast<size_t>(got));
    if (content.size() > limit) return Status::InvalidArgument(path + ": grew while read");
  }
  return content;
}

namespace {

Status Replace(const std::string& path, std::string_view content, mode_t mode, DeferredSync* deferred) {
  std::string temp = path + ".tmp-XXXXXX";
  UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (!fd) return Status::FromErrno(errno, "create temporary file", temp);
  Status status = WriteAndRename(fd.get(), temp, path, content, mode, /*sync=*/deferred == nullptr);
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return status;
  }
  std::string parent = ParentOf(path);
  if (deferred != nullptr) {
    deferred->Note(parent);
    return Status::Ok();
  }
  UniqueFd dir(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return Status::FromErrno(errno, "open", parent);
  if (::fsync(dir.get()) != 0) return Status::FromErrno(errno, "fsync", parent);
  return Status::Ok();
}

}  // namespace

Status ReplaceFileAtomically(const std::string& path, std::string_view content, mode_t mode) {
  return Replace(path, content, mode, DeferredSync::Current());
}

Status ReplaceFileDurably(const std::string& path, std::string_view content, mode_t mode) {
  return Replace(path, content, mode, nullptr);
}

}  // namespace fe
