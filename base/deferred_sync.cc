#include "base/deferred_sync.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace fe {
namespace {

thread_local DeferredSync* current_scope = nullptr;

}  // namespace

DeferredSync::DeferredSync(SyncfsFunction syncfs) : syncfs_(std::move(syncfs)), previous_(current_scope) {
  current_scope = this;
}

DeferredSync::~DeferredSync() { current_scope = previous_; }

DeferredSync* DeferredSync::Current() { return current_scope; }

void DeferredSync::Note(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (noted_.ok()) noted_ = Status::FromErrno(errno, "stat", dir);
    return;
  }
  if (filesystems_.count(st.st_dev) != 0) return;
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) {
    if (noted_.ok()) noted_ = Status::FromErrno(errno, "open", dir);
    return;
  }
  filesystems_.emplace(st.st_dev, std::make_pair(dir, std::move(fd)));
}

void DeferredSync::Note(int dir_fd, const std::string& display) {
  struct stat st {};
  if (::fstat(dir_fd, &st) != 0) {
    if (noted_.ok()) noted_ = Status::FromErrno(errno, "stat", display);
    return;
  }
  if (filesystems_.count(st.st_dev) != 0) return;
  UniqueFd fd(::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0));
  if (!fd) {
    if (noted_.ok()) noted_ = Status::FromErrno(errno, "dup", display);
    return;
  }
  filesystems_.emplace(st.st_dev, std::make_pair(display, std::move(fd)));
}

void DeferredSync::Adopt(DeferredSync& other) {
  if (noted_.ok() && !other.noted_.ok()) noted_ = other.noted_;
  other.noted_ = Status::Ok();
  filesystems_.merge(other.filesystems_);  // a filesystem already noted here keeps its directory
  other.filesystems_.clear();
}

Status DeferredSync::Sync() {
  FE_RETURN_IF_ERROR(noted_);
  for (const auto& [device, dir_and_fd] : filesystems_) {
    const int fd = dir_and_fd.second.get();
    const int synced = syncfs_ ? syncfs_(fd) : ::syncfs(fd);
    if (synced != 0) return Status::FromErrno(errno, "syncfs", dir_and_fd.first);
  }
  return Status::Ok();
}

}  // namespace fe
