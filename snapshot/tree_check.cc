#include "snapshot/tree_check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "base/fs_util.h"

namespace fe::snapshot {
namespace {

struct Walk {
  const ConfinedDir& root;
  size_t entries = 0;

  Status Refuse(const std::string& relative, const std::string& why) const {
    return Status::InvalidContent(root.PathOf(relative) + ": " + why);
  }

  Status CheckEntry(int dir_fd, const std::string& relative, const std::string& name, size_t depth) {
    if (++entries > kMaxGuestTreeEntries) {
      return Status::InvalidContent(root.path() + ": more than " + std::to_string(kMaxGuestTreeEntries) +
                                    " entries; a guest directory holds its VM's files only");
    }
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return Status::FromErrno(errno, "stat", root.PathOf(relative));
    }
    switch (st.st_mode & S_IFMT) {
      case S_IFREG:
      case S_IFSOCK: return Status::Ok();
      case S_IFDIR: return CheckDirectory(relative, depth + 1);
      case S_IFLNK: {
        std::string target(static_cast<size_t>(st.st_size > 0 ? st.st_size : 0) + 1, '\0');
        ssize_t length = ::readlinkat(dir_fd, name.c_str(), target.data(), target.size());
        if (length < 0) return Status::FromErrno(errno, "read symlink", root.PathOf(relative));
        target.resize(static_cast<size_t>(length));
        if (IsContainedLinkTarget(target)) return Status::Ok();
        return Refuse(relative, "a symbolic link to '" + target +
                                    "', which leads out of the guest directory (only relative links that go "
                                    "down, without '..', are kept)");
      }
      case S_IFBLK: return Refuse(relative, "a block device node; a guest directory holds no device nodes");
      case S_IFCHR: return Refuse(relative, "a character device node; a guest directory holds no device nodes");
      case S_IFIFO: return Refuse(relative, "a FIFO; a guest directory holds no FIFOs");
      default: return Refuse(relative, "a file of an unknown type");
    }
  }

  Status CheckDirectory(const std::string& relative, size_t depth) {
    if (depth > kMaxGuestTreeDepth) {
      return Refuse(relative, "nested deeper than " + std::to_string(kMaxGuestTreeDepth) + " directories");
    }
    FE_ASSIGN_OR_RETURN(UniqueFd dir, root.OpenFile(relative, O_RDONLY | O_DIRECTORY));
    std::vector<DirectoryEntry> names;
    FE_RETURN_IF_ERROR(ReadDirectory(dir.get(), names, root.PathOf(relative)));
    for (const DirectoryEntry& entry : names) {
      const std::string child = relative.empty() ? entry.name : relative + "/" + entry.name;
      FE_RETURN_IF_ERROR(CheckEntry(dir.get(), child, entry.name, depth));
    }
    return Status::Ok();
  }
};

}  // namespace

bool IsContainedLinkTarget(std::string_view target) {
  if (target.empty() || target.front() == '/') return false;
  while (!target.empty()) {
    const size_t slash = target.find('/');
    const std::string_view component = target.substr(0, slash);
    if (component == "..") return false;
    if (slash == std::string_view::npos) break;
    target.remove_prefix(slash + 1);
  }
  return true;
}

Status CheckGuestTree(const ConfinedDir& dir) {
  Walk walk{dir};
  return walk.CheckDirectory("", 0);
}

}  // namespace fe::snapshot
