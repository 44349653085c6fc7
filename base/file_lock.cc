#include "base/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

namespace fe {

Result<FileLock> FileLock::Acquire(const std::string& path, std::string_view what, std::chrono::milliseconds timeout) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return Status::FromErrno(errno, "open lock file", path);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return Status::FromErrno(errno, "flock", path);
    if (std::chrono::steady_clock::now() >= deadline) {
      std::string waited = timeout.count() > 0 ? " (waited " + std::to_string(timeout.count()) + " ms)" : "";
      return Status::Busy(std::string(what) + " is in use by another holder: flock on " + path + " is held" + waited);
    }
    // flock has no timed wait; a lock is held for milliseconds, so polling costs little.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return FileLock(std::move(fd), path);
}

void FileLock::Describe(std::string_view text) const {
  if (::ftruncate(fd_.get(), 0) != 0) return;
  ssize_t ignored = ::pwrite(fd_.get(), text.data(), text.size(), 0);
  (void)ignored;
}

}  // namespace fe
