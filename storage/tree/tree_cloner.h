// The tree cloner: copies a directory tree copy-on-write, atomically, never escaping either tree.
//
// Regular files are cloned with FICLONE (sharing extents) and fall back, per file, to a sparse copy
// when the filesystem refuses (EOPNOTSUPP, EXDEV, EINVAL). Directories are recreated, symlinks are
// recreated as symlinks and never followed, hard links stay hard links within the clone, and mode,
// owner, atime/mtime (ns) and xattrs are preserved. Sockets, FIFOs and device nodes are skipped and
// reported: a hypervisor's API socket must never be cloned.
//
// Every access is relative to a directory fd opened beneath the source or destination root with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so neither a symlink nor ".." can lead outside.
//
// Atomicity: the tree is built under a temporary sibling of the destination and renamed into place
// (RENAME_NOREPLACE) only when complete. An existing destination is an error and is left untouched;
// on any failure the temporary tree is removed and the error names the path, operation and errno text.
//
// Work is spread over a process-wide worker pool (both cores); metadata syscalls of a batch go through
// io_uring or plain syscalls, whichever IoEngine says.
#pragma once

#include <string>

#include "base/status.h"
#include "storage/clone_report.h"

namespace fe::storage::tree {

enum class DataMode {
  kReflink,  // FICLONE, with a per-file sparse-copy fallback
  kCopy,     // sparse copy only (SEEK_DATA/SEEK_HOLE + copy_file_range)
};

enum class IoEngine {
  kDefault,   // the faster one as measured by forkbench (see README)
  kSyscalls,  // one syscall per operation
  kUring,     // batched through io_uring; falls back to syscalls when io_uring is unavailable
};

struct CloneOptions {
  DataMode data_mode = DataMode::kReflink;
  IoEngine io_engine = IoEngine::kDefault;
  // Make the finished clone durable before reporting success: data written by the copy fallback is
  // synced (syncfs) before the rename, and the parent directory is fsynced after it. Under a
  // DeferredSync scope on the calling thread (base/deferred_sync.h) both are left to the scope's
  // Sync(): the clone notes its filesystem there instead.
  bool durable = true;
};

// Clones the directory `source_name` (one path component) under `source_parent_fd` to `target_name`
// under `target_parent_fd`. The target must not exist.
Result<CloneReport> CloneTree(int source_parent_fd, const std::string& source_name, int target_parent_fd,
                              const std::string& target_name, const CloneOptions& options);

// Path convenience: the parents of `source` and `target` are opened as given (the user chose them);
// everything below them is resolved beneath.
Result<CloneReport> CloneTree(const std::string& source, const std::string& target, const CloneOptions& options);

// Clones the contents of `source_name` under `source_parent_fd` into the existing, empty directory
// `target_root_fd` (a fresh btrfs subvolume, say), and gives that directory the source root's
// metadata. Not atomic by itself: callers build under a temporary name and rename it into place.
// On failure the partial contents stay for the caller to remove.
Result<CloneReport> CloneContents(int source_parent_fd, const std::string& source_name, int target_root_fd,
                                  const CloneOptions& options);

}  // namespace fe::storage::tree
