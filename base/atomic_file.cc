#include "base/atomic_file.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/deferred_sync.h"
#include "base/fs_util.h"
#include "base/unique_fd.h"

namespace fe {
namespace {

constexpr std::string_view kTemporaryInfix = ".tmp-";
constexpr size_t kTemporarySuffixLength = 6;

std::string ParentOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string NameOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string Display(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
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

// Writes, syncs and renames the temporary file over `name`; the caller removes it on failure.
Status WriteAndRename(int dir_fd, const std::string& dir_display, int fd, const std::string& temp,
                      const std::string& name, std::string_view content, mode_t mode, bool sync) {
  const std::string path = Display(dir_display, name);
  struct stat existing {};
  if (::fstatat(dir_fd, name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISREG(existing.st_mode)) return Status::InvalidArgument("replace " + path + ": not a regular file");
    mode = existing.st_mode & 07777;
    if (::fchown(fd, existing.st_uid, existing.st_gid) != 0) {
      return Status::FromErrno(errno, "chown", Display(dir_display, temp));
    }
  } else if (errno != ENOENT) {
    return Status::FromErrno(errno, "stat", path);
  }
  if (::fchmod(fd, mode) != 0) return Status::FromErrno(errno, "chmod", Display(dir_display, temp));
  FE_RETURN_IF_ERROR(WriteAll(fd, content, Display(dir_display, temp)));
  if (sync && ::fsync(fd) != 0) return Status::FromErrno(errno, "fsync", Display(dir_display, temp));
  if (::renameat(dir_fd, temp.c_str(), dir_fd, name.c_str()) != 0) {
    return Status::FromErrno(errno, "rename to " + path, Display(dir_display, temp));
  }
  return Status::Ok();
}

Status ReplaceIn(int dir_fd, const std::string& dir_display, const std::string& name, std::string_view content,
                 mode_t mode, DeferredSync* deferred) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
    return Status::InvalidArgument("replace '" + name + "' in " + dir_display + ": not a file name");
  }
  FE_ASSIGN_OR_RETURN(auto temp, CreateTemporaryFileAt(dir_fd, dir_display, name));
  Status status =
      WriteAndRename(dir_fd, dir_display, temp.first.get(), temp.second, name, content, mode, deferred == nullptr);
  if (!status.ok()) {
    ::unlinkat(dir_fd, temp.second.c_str(), 0);
    return status;
  }
  if (deferred != nullptr) {
    deferred->Note(dir_fd, dir_display);
    return Status::Ok();
  }
  if (::fsync(dir_fd) != 0) return Status::FromErrno(errno, "fsync", dir_display);
  return Status::Ok();
}

Status ReplacePath(const std::string& path, std::string_view content, mode_t mode, DeferredSync* deferred) {
  const std::string parent = ParentOf(path);
  UniqueFd dir(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return Status::FromErrno(errno, "open", parent);
  return ReplaceIn(dir.get(), parent, NameOf(path), content, mode, deferred);
}

}  // namespace

Result<std::pair<UniqueFd, std::string>> CreateTemporaryFileAt(int dir_fd, const std::string& dir_display,
                                                               const std::string& name) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (int attempt = 0; attempt < 100; ++attempt) {
    unsigned char random[kTemporarySuffixLength];
    if (::getrandom(random, sizeof(random), 0) != static_cast<ssize_t>(sizeof(random))) {
      return Status::FromErrno(errno, "getrandom for a temporary name in", dir_display);
    }
    std::string temp = name + std::string(kTemporaryInfix);
    for (unsigned char byte : random) temp.push_back(kAlphabet[byte % (sizeof(kAlphabet) - 1)]);
    UniqueFd fd(::openat(dir_fd, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd) return std::make_pair(std::move(fd), std::move(temp));
    if (errno != EEXIST) return Status::FromErrno(errno, "create temporary file", Display(dir_display, temp));
  }
  return Status::Internal("create temporary file for " + Display(dir_display, name) + ": 100 names taken");
}

Result<bool> IsRegularFile(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    return Status::FromErrno(errno, "stat", path);
  }
  return S_ISREG(st.st_mode);
}

Result<std::string> ReadSmallFile(const std::string& path, size_t limit) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return Status::FromErrno(errno, "open", path);
  return ReadSmallFileFd(fd.get(), path, limit);
}

Result<std::string> ReadSmallFileFd(int fd, std::string_view display, size_t limit) {
  const std::string path(display);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::FromErrno(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + ": not a regular file");
  if (static_cast<uint64_t>(st.st_size) > limit) {
    return Status::InvalidArgument(path + ": " + std::to_string(st.st_size) + " bytes, more than the " +
                                   std::to_string(limit) + " this file may have");
  }
  std::string content;
  char buffer[65536];
  while (true) {
    ssize_t got = ::read(fd, buffer, sizeof(buffer));
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

Status ReplaceFileAtomically(const std::string& path, std::string_view content, mode_t mode) {
  return ReplacePath(path, content, mode, DeferredSync::Current());
}

Status ReplaceFileDurably(const std::string& path, std::string_view content, mode_t mode) {
  return ReplacePath(path, content, mode, nullptr);
}

Status ReplaceFileAt(int dir_fd, const std::string& dir_display, const std::string& name, std::string_view content,
                     mode_t mode) {
  return ReplaceIn(dir_fd, dir_display, name, content, mode, DeferredSync::Current());
}

Status RemoveFileDurably(const std::string& path) {
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::FromErrno(errno, "remove", path);
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Status::FromErrno(errno, "open", dir);
  if (::fsync(fd.get()) != 0) return Status::FromErrno(errno, "fsync", dir);
  return Status::Ok();
}

Result<std::vector<std::string>> RemoveTemporaryFilesOf(const std::string& path) {
  const std::string dir = ParentOf(path);
  const std::string prefix = NameOf(path) + std::string(kTemporaryInfix);
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd) return Status::FromErrno(errno, "open", dir);
  std::vector<DirectoryEntry> entries;
  FE_RETURN_IF_ERROR(ReadDirectory(dir_fd.get(), entries, dir));
  std::vector<std::string> removed;
  for (const DirectoryEntry& entry : entries) {
    if (!entry.name.starts_with(prefix) || !IsTemporaryName(entry.name)) continue;
    struct stat st;
    if (::fstatat(dir_fd.get(), entry.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    if (::unlinkat(dir_fd.get(), entry.name.c_str(), 0) != 0) {
      return Status::FromErrno(errno, "remove", Display(dir, entry.name));
    }
    removed.push_back(entry.name);
  }
  if (!removed.empty() && ::fsync(dir_fd.get()) != 0) return Status::FromErrno(errno, "fsync", dir);
  return removed;
}

bool IsTemporaryName(std::string_view name) {
  const size_t at = name.rfind(kTemporaryInfix);
  return at != std::string_view::npos && at > 0 && name.size() == at + kTemporaryInfix.size() + kTemporarySuffixLength;
}

}  // namespace fe
