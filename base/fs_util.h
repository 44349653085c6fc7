// Small fd-relative file-system helpers shared by the cloner and the backends.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"

namespace fe {

struct DirectoryEntry {
  std::string name;
  unsigned char type;  // DT_* from getdents64, DT_UNKNOWN when the filesystem does not say
};

// True for one path component other than "." and "..".
bool IsSingleComponent(std::string_view name);

// openat2 confined beneath `dir_fd` with no symlink anywhere in `path` (RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS). `display` names the path in errors.
Result<UniqueFd> OpenBeneath(int dir_fd, const std::string& path, int flags, mode_t mode, std::string_view display);

// Reads every entry of the open directory `dir_fd` (except "." and "..") with getdents64.
Status ReadDirectory(int dir_fd, std::vector<DirectoryEntry>& entries, std::string_view display);

// Counts the entries of the tree under `dir_fd` (not following symlinks), stopping once `limit` is
// reached: a cheap size test that never walks a whole large tree.
Result<size_t> CountEntries(int dir_fd, size_t limit, std::string_view display);

// The path the kernel has for an open fd (for messages only), or "<fd N>".
std::string FdPath(int fd);

// "parent/name", or just `name` when parent is empty.
std::string JoinPath(std::string_view parent, std::string_view name);

// pwrite/pread of exactly `size` bytes at `offset`, retrying short transfers and EINTR. ReadAllAt
// fails with InvalidArgument when the file ends first. `display` names the file in errors.
Status WriteAllAt(int fd, const void* data, size_t size, off_t offset, std::string_view display);
Status ReadAllAt(int fd, void* data, size_t size, off_t offset, std::string_view display);

// Removes a tree beneath `parent_fd` without following symlinks. Used for temporary trees and by
// backends removing volumes.
Status RemoveTree(int parent_fd, const std::string& name);

// Creates every missing directory of `path` with `mode`; FailedPrecondition when `path` is not a
// directory.
Status MakeDirectories(const std::string& path, mode_t mode);

}  // namespace fe
