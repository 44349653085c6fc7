#include "base/confined_dir.h"

#include "base/deferred_sync.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace fe {
namespace {

// "" and "." both mean the directory itself.
bool IsSelf(std::string_view relative) { return relative.empty() || relative == "."; }

}  // namespace

Result<ConfinedDir> ConfinedDir::Open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    if (errno == ENOENT) return Status::NotFound(path + ": no such directory");
    if (errno == ENOTDIR || errno == ELOOP) {
      struct stat st {};
      const bool link = ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
      return Status::FailedPrecondition(path + (link ? ": is a symbolic link, not a directory" : ": not a directory"));
    }
    return Status::FromErrno(errno, "open", path);
  }
  return ConfinedDir(path, std::move(fd));
}

std::string ConfinedDir::PathOf(std::string_view relative) const {
  if (IsSelf(relative)) return path_;
  return path_ + "/" + std::string(relative);
}

Result<UniqueFd> ConfinedDir::OpenFile(std::string_view relative, int flags, mode_t mode) const {
  return OpenBeneath(fd_.get(), IsSelf(relative) ? "." : std::string(relative), flags, mode, PathOf(relative));
}

Result<ConfinedDir> ConfinedDir::OpenSubdirectory(std::string_view relative) const {
  FE_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(relative, O_RDONLY | O_DIRECTORY));
  return ConfinedDir(PathOf(relative), std::move(fd));
}

Result<std::pair<UniqueFd, std::string>> ConfinedDir::OpenParent(std::string_view relative) const {
  if (IsSelf(relative)) return Status::InvalidArgument(path_ + ": the directory itself is not a file");
  const size_t slash = relative.rfind('/');
  const std::string name(slash == std::string_view::npos ? relative : relative.substr(slash + 1));
  if (!IsSingleComponent(name)) return Status::InvalidArgument(PathOf(relative) + ": not a file name");
  const std::string_view parent = slash == std::string_view::npos ? std::string_view(".") : relative.substr(0, slash);
  FE_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(parent, O_RDONLY | O_DIRECTORY));
  return std::make_pair(std::move(fd), name);
}

Result<std::optional<struct stat>> ConfinedDir::Stat(std::string_view relative) const {
  struct stat st {};
  if (IsSelf(relative)) {
    if (::fstat(fd_.get(), &st) != 0) return Status::FromErrno(errno, "stat", path_);
    return std::optional<struct stat>(st);
  }
  Result<std::pair<UniqueFd, std::string>> parent = OpenParent(relative);
  if (!parent.ok()) {
    if (parent.status().sys_errno() == ENOENT) return std::optional<struct stat>();
    return parent.status();
  }
  if (::fstatat(parent->first.get(), parent->second.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return std::optional<struct stat>();
    return Status::FromErrno(errno, "stat", PathOf(relative));
  }
  return std::optional<struct stat>(st);
}

bool ConfinedDir::IsRegularFile(std::string_view relative) const {
  Result<std::optional<struct stat>> st = Stat(relative);
  return st.ok() && st->has_value() && S_ISREG((*st)->st_mode);
}

bool ConfinedDir::IsDirectory(std::string_view relative) const {
  Result<std::optional<struct stat>> st = Stat(relative);
  return st.ok() && st->has_value() && S_ISDIR((*st)->st_mode);
}

Result<std::string> ConfinedDir::ReadFile(std::string_view relative, size_t limit) const {
  FE_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(relative, O_RDONLY));
  return ReadSmallFileFd(fd.get(), PathOf(relative), limit);
}

Status ConfinedDir::ReplaceFile(std::string_view relative, std::string_view content, mode_t mode) const {
  FE_ASSIGN_OR_RETURN(auto parent, OpenParent(relative));
  const size_t slash = relative.rfind('/');
  const std::string parent_display = slash == std::string_view::npos ? path_ : PathOf(relative.substr(0, slash));
  return ReplaceFileAt(parent.first.get(), parent_display, parent.second, content, mode);
}

Status ConfinedDir::OverwriteFile(std::string_view relative, std::string_view content) const {
  // Non-blocking: a FIFO in a guest directory must not hang the open; it is refused just below.
  FE_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(relative, O_WRONLY | O_TRUNC | O_NONBLOCK));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno(errno, "stat", PathOf(relative));
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument("overwrite " + PathOf(relative) + ": not a regular file");
  FE_RETURN_IF_ERROR(WriteAllAt(fd.get(), content.data(), content.size(), 0, PathOf(relative)));
  if (DeferredSync* scope = DeferredSync::Current()) {
    scope->Note(fd_.get(), path_);
    return Status::Ok();
  }
  if (::fdatasync(fd.get()) != 0) return Status::FromErrno(errno, "fdatasync", PathOf(relative));
  return Status::Ok();
}

Status ConfinedDir::MakeDirectory(std::string_view relative, mode_t mode) const {
  FE_ASSIGN_OR_RETURN(auto parent, OpenParent(relative));
  if (::mkdirat(parent.first.get(), parent.second.c_str(), mode) == 0) return Status::Ok();
  if (errno == EEXIST && IsDirectory(relative)) return Status::Ok();
  return Status::FromErrno(errno, "create directory", PathOf(relative));
}

Status ConfinedDir::Remove(std::string_view relative) const {
  Result<std::pair<UniqueFd, std::string>> parent = OpenParent(relative);
  if (!parent.ok()) return parent.status().sys_errno() == ENOENT ? Status::Ok() : parent.status();
  struct stat st {};
  if (::fstatat(parent->first.get(), parent->second.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? Status::Ok() : Status::FromErrno(errno, "stat", PathOf(relative));
  }
  const int flags = S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0;
  if (::unlinkat(parent->first.get(), parent->second.c_str(), flags) != 0 && errno != ENOENT) {
    return Status::FromErrno(errno, "remove", PathOf(relative));
  }
  return Status::Ok();
}

namespace {

Status RemoveTemporaryIn(const ConfinedDir& root, const std::string& relative, size_t depth_left,
                         std::vector<std::string>& removed) {
  FE_ASSIGN_OR_RETURN(UniqueFd dir, root.OpenFile(relative, O_RDONLY | O_DIRECTORY));
  std::vector<DirectoryEntry> entries;
  FE_RETURN_IF_ERROR(ReadDirectory(dir.get(), entries, root.PathOf(relative)));
  for (const DirectoryEntry& entry : entries) {
    const std::string child = relative.empty() ? entry.name : relative + "/" + entry.name;
    struct stat st {};
    if (::fstatat(dir.get(), entry.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone meanwhile
    if (S_ISDIR(st.st_mode)) {
      if (depth_left > 0) FE_RETURN_IF_ERROR(RemoveTemporaryIn(root, child, depth_left - 1, removed));
      continue;
    }
    if (!S_ISREG(st.st_mode) || !IsTemporaryName(entry.name)) continue;
    if (::unlinkat(dir.get(), entry.name.c_str(), 0) != 0 && errno != ENOENT) {
      return Status::FromErrno(errno, "remove temporary file", root.PathOf(child));
    }
    removed.push_back(child);
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<std::string>> RemoveTemporaryFiles(const ConfinedDir& dir, size_t max_depth) {
  std::vector<std::string> removed;
  FE_RETURN_IF_ERROR(RemoveTemporaryIn(dir, "", max_depth, removed));
  return removed;
}

Result<std::string> ReadFileBeneath(const std::string& dir, std::string_view relative, size_t limit) {
  FE_ASSIGN_OR_RETURN(ConfinedDir confined, ConfinedDir::Open(dir));
  return confined.ReadFile(relative, limit);
}

Status ReplaceFileBeneath(const std::string& dir, std::string_view relative, std::string_view content, mode_t mode) {
  FE_ASSIGN_OR_RETURN(ConfinedDir confined, ConfinedDir::Open(dir));
  return confined.ReplaceFile(relative, content, mode);
}

bool IsRegularFileBeneath(const std::string& dir, std::string_view relative) {
  Result<ConfinedDir> confined = ConfinedDir::Open(dir);
  return confined.ok() && confined->IsRegularFile(relative);
}

}  // namespace fe
