// Room kept aside on a filesystem for the writes that free space. When the filesystem fills up, the
// writes that undo or delete things (a lease released: the lease file rewritten; a state change
// recorded) need a little room themselves, and without it a full disk could keep an operator from
// deleting the very instances that fill it. A reserve is a file of preallocated blocks: when an
// operation fails for want of space, the reserve is deleted and the operation runs once more; the
// reserve is made again (Refill) when there is room.
//
// Threads: every method may be called concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "base/status.h"

namespace fe {

class SpaceReserve {
 public:
  // `path`: the reserve file (on the filesystem to keep room on); `bytes`: how much room.
  SpaceReserve(std::string path, uint64_t bytes) : path_(std::move(path)), bytes_(bytes) {}

  // Makes the reserve when it is missing; Ok without it when there is no room (tried again at the
  // next Refill). Other errors name the path.
  Status Refill();
  // Runs `operation`; if it fails with kNoSpace and the reserve is there, deletes the reserve and runs
  // it once more. The second outcome is returned.
  Status WithRoom(const std::function<Status()>& operation);
  bool held() const;
  const std::string& path() const { return path_; }

 private:
  const std::string path_;
  const uint64_t bytes_;
  mutable std::mutex mutex_;
  bool held_ = false;  // GUARDED_BY(mutex_)
};

}  // namespace fe
