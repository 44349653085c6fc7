// An exclusive advisory lock (flock(2)) on a lock file, held for as long as the FileLock lives: one
// process at a time may own a piece of state (the network leases, the dm-thin ledger, a Firecracker
// source's alias). The kernel drops it when the process dies, so a crash never leaves it held.
//
// flock locks belong to the open file description: a second Acquire in the same process on the same
// path is refused like one from another process.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "base/status.h"
#include "base/unique_fd.h"

namespace fe {

class FileLock {
 public:
  // Opens `path` (created, mode 0600, when missing) and takes the lock, waiting at most `timeout`
  // (zero: not at all). Busy naming `what` and the path when someone else holds it; the errno of
  // open or flock otherwise.
  static Result<FileLock> Acquire(const std::string& path, std::string_view what,
                                  std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  // Replaces the lock file's content with `text`, for whoever looks at the lock (best effort).
  void Describe(std::string_view text) const;

 private:
  FileLock(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}

  UniqueFd fd_;
  std::string path_;
};

}  // namespace fe
