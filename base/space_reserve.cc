#include "base/space_reserve.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/log.h"
#include "base/unique_fd.h"

namespace fe {

Status SpaceReserve::Refill() {
  std::lock_guard lock(mutex_);
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_blocks) * 512 >= bytes_) {
    held_ = true;
    return Status::Ok();
  }
  UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) {
    if (errno == ENOSPC || errno == EDQUOT) return Status::Ok();
    return Status::FromErrno(errno, "create space reserve", path_);
  }
  if (::fallocate(fd.get(), 0, 0, static_cast<off_t>(bytes_)) != 0 || ::fsync(fd.get()) != 0) {
    const int err = errno;
    ::unlink(path_.c_str());  // a partial reserve would only look like room
    if (err == ENOSPC || err == EDQUOT) return Status::Ok();
    return Status::FromErrno(err, "preallocate space reserve", path_);
  }
  held_ = true;
  return Status::Ok();
}

Status SpaceReserve::WithRoom(const std::function<Status()>& operation) {
  Status first = operation();
  if (first.code() != ErrorCode::kNoSpace) return first;
  {
    std::lock_guard lock(mutex_);
    if (!held_) return first;
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) return first;
    held_ = false;
  }
  LogWarning("the filesystem of " + path_ + " is full: released the space reserve to finish: " + first.ToString());
  return operation();
}

bool SpaceReserve::held() const {
  std::lock_guard lock(mutex_);
  return held_;
}

}  // namespace fe
