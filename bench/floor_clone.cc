#include "bench/floor_clone.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/unique_fd.h"

namespace fe::bench {

Result<std::chrono::nanoseconds> FloorClone(const std::string& source, const TreeListing& listing,
                                            const std::string& target) {
  auto start = std::chrono::steady_clock::now();
  UniqueFd source_root(::open(source.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!source_root) return Status::FromErrno(errno, "open", source);
  if (::mkdir(target.c_str(), 0755) != 0) return Status::FromErrno(errno, "mkdir", target);
  UniqueFd target_root(::open(target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!target_root) return Status::FromErrno(errno, "open", target);
  for (const std::string& directory : listing.directories) {
    if (::mkdirat(target_root.get(), directory.c_str(), 0755) != 0) {
      return Status::FromErrno(errno, "mkdir", target + "/" + directory);
    }
  }
  for (const std::string& file : listing.files) {
    UniqueFd from(::openat(source_root.get(), file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!from) return Status::FromErrno(errno, "open", source + "/" + file);
    UniqueFd to(::openat(target_root.get(), file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!to) return Status::FromErrno(errno, "create", target + "/" + file);
    if (::ioctl(to.get(), FICLONE, from.get()) != 0) {
      return Status::FromErrno(errno, "FICLONE", target + "/" + file);
    }
  }
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start);
}

}  // namespace fe::bench
