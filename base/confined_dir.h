// A directory whose every file operation resolves beneath it, for directories whose content a client
// controls (guest directories: an imported one, and every instance's volume).
//
// Each operation names a path relative to the directory and resolves it with openat2(RESOLVE_BENEATH
// | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) from the directory's fd: no "..", no absolute path,
// and no symlink in *any* component can lead it out (O_NOFOLLOW alone guards only the last one, and
// a symlinked directory in the middle of a path is the classic escape). A symlink is never followed;
// it is reported as what it is. The directory itself is opened once, without following a final
// symlink; the path leading to it is the caller's (the engine's own data root, or the path an
// administrator gave).
//
// Threads: const methods may be called concurrently.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/atomic_file.h"
#include "base/fs_util.h"
#include "base/status.h"
#include "base/unique_fd.h"

namespace fe {

class ConfinedDir {
 public:
  // Opens the directory `path` (absolute). NotFound when missing; FailedPrecondition when it is not
  // a directory or is a symlink (naming the path).
  static Result<ConfinedDir> Open(const std::string& path);

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  // path() + "/" + relative: how errors and configs name a file of the directory.
  std::string PathOf(std::string_view relative) const;

  // Opens `relative` beneath the directory (openat2, see above) with `flags`.
  Result<UniqueFd> OpenFile(std::string_view relative, int flags, mode_t mode = 0) const;
  // The directory `relative` beneath this one, itself confined.
  Result<ConfinedDir> OpenSubdirectory(std::string_view relative) const;
  // lstat of `relative` (resolved beneath, the last component not followed); nullopt when absent.
  Result<std::optional<struct stat>> Stat(std::string_view relative) const;
  bool IsRegularFile(std::string_view relative) const;
  bool IsDirectory(std::string_view relative) const;

  // The regular file `relative`, at most `limit` bytes (ReadSmallFile's rules).
  Result<std::string> ReadFile(std::string_view relative, size_t limit = kSmallFileLimit) const;
  // Atomically replaces the regular file `relative` (ReplaceFileAtomically's rules, within a
  // DeferredSync scope when one is current); its directory must exist beneath this one.
  Status ReplaceFile(std::string_view relative, std::string_view content, mode_t mode = 0644) const;
  // Rewrites the existing regular file `relative` in place (truncates it, writes `content`): for a
  // file nobody reads yet, a config of a fork being made, whose maker discards the whole directory
  // when anything fails, so a half-written file is never seen. It saves ReplaceFile's new inode and
  // rename, the dearest part of a fork's rewrite. Within a DeferredSync scope the scope's Sync makes
  // it durable; else it is fdatasync'ed.
  Status OverwriteFile(std::string_view relative, std::string_view content) const;
  // Creates the directory `relative` (its parent must exist); Ok when it exists as a directory.
  Status MakeDirectory(std::string_view relative, mode_t mode = 0755) const;
  // Removes the file, symlink or empty directory `relative`; Ok when absent.
  Status Remove(std::string_view relative) const;

 private:
  ConfinedDir(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  // The open parent directory of `relative` and the last component's name.
  Result<std::pair<UniqueFd, std::string>> OpenParent(std::string_view relative) const;

  std::string path_;
  UniqueFd fd_;
};

// Removes the temporary files the atomic writers leave when a crash interrupts them
// (IsTemporaryName: "<name>.tmp-XXXXXX") in `dir` and its subdirectories down to `max_depth` levels
// (0: `dir` only), never following a link. Returns what it removed, relative to `dir`.
Result<std::vector<std::string>> RemoveTemporaryFiles(const ConfinedDir& dir, size_t max_depth);

// One-off forms for code that holds a directory's path: each opens `dir` as a ConfinedDir and does
// the one operation beneath it.
Result<std::string> ReadFileBeneath(const std::string& dir, std::string_view relative, size_t limit = kSmallFileLimit);
Status ReplaceFileBeneath(const std::string& dir, std::string_view relative, std::string_view content,
                          mode_t mode = 0644);
// Whether `relative` beneath `dir` is a regular file (false when absent, not one, or unreachable).
bool IsRegularFileBeneath(const std::string& dir, std::string_view relative);

}  // namespace fe
