#include "storage/loop/loop_pool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <charconv>
#include <memory>

#include "base/fs_util.h"
#include "storage/loop/loop_filesystem.h"
#include "storage/tree/reflink_probe.h"

namespace fe::storage::loop {
namespace {

Result<bool> IsMountPoint(const std::string& path) {
  struct statx self {};
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &self) != 0) {
    return Status::FromErrno(errno, "statx", path);
  }
  if (self.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) return (self.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  struct stat here {
  }, parent{};
  if (::stat(path.c_str(), &here) != 0) return Status::FromErrno(errno, "stat", path);
  if (::stat((path + "/..").c_str(), &parent) != 0) return Status::FromErrno(errno, "stat", path + "/..");
  return here.st_dev != parent.st_dev;
}

Result<bool> IsEmptyDirectory(const std::string& path) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), ::closedir);
  if (!dir) return Status::FromErrno(errno, "opendir", path);
  while (dirent* entry = ::readdir(dir.get())) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") return false;
  }
  return true;
}

}  // namespace

Result<LoopPoolMode> ParseLoopPoolMode(const std::string& text) {
  if (text == "none") return LoopPoolMode::kNone;
  if (text == "auto") return LoopPoolMode::kAuto;
  return Status::InvalidArgument("loop pool '" + text + "' is not one of none, auto");
}

Result<uint64_t> ParseSize(const std::string& text) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [rest, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc() || rest == text.data())
    return Status::InvalidArgument("size '" + text + "' is not a number");
  std::string_view suffix(rest, end - rest);
  int shift = suffix.empty()  ? 0
              : suffix == "K" ? 10
              : suffix == "M" ? 20
              : suffix == "G" ? 30
              : suffix == "T" ? 40
                              : -1;
  if (shift < 0) return Status::InvalidArgument("size '" + text + "': unit must be K, M, G or T");
  if (shift > 0 && value > (UINT64_MAX >> shift)) return Status::InvalidArgument("size '" + text + "' is too large");
  return value << shift;
}

Result<std::string> PrepareLoopPool(const std::string& volumes, const std::string& image, LoopPoolMode mode,
                                    uint64_t size_bytes) {
  if (mode == LoopPoolMode::kNone) return std::string("loop pool: none (volumes live in " + volumes + ")");
  FE_RETURN_IF_ERROR(MakeDirectories(volumes, 0700));
  Result<bool> mounted = IsMountPoint(volumes);
  if (!mounted.ok()) return mounted.status();
  if (*mounted) return std::string("loop pool: " + volumes + " is already a mount point; using it");

  Result<storage::tree::FilesystemProbe> probe = storage::tree::ProbeFilesystem(volumes);
  if (!probe.ok()) return probe.status().Annotate("loop pool");
  if (probe->reflink) {
    return std::string("loop pool: not needed, " + volumes + " is on " + probe->filesystem + " with reflink (" +
                       probe->reason + ")");
  }
  std::string why;
  if (!LoopFilesystem::Available(&why)) {
    return std::string("loop pool: unavailable (" + why + "); volumes stay on " + probe->filesystem +
                       " without reflink (" + probe->reason + ")");
  }
  Result<bool> empty = IsEmptyDirectory(volumes);
  if (!empty.ok()) return empty.status();
  if (!*empty) {
    return std::string("loop pool: not mounting over " + volumes + ": it already holds volumes on " +
                       probe->filesystem + " (" + probe->reason + ")");
  }
  LoopFilesystemOptions options;
  options.type = LoopFilesystemType::kXfs;
  options.image_path = image;
  options.size_bytes = size_bytes;
  options.mount_point = volumes;
  options.keep_image = true;
  Result<LoopFilesystem> pool = LoopFilesystem::Open(options);
  if (!pool.ok()) return pool.status().Annotate("mounting the loop pool");
  // Deliberately never destroyed: its destructor would unmount the pool under running VMs (see the
  // header). A reachable static, so leak checkers do not report it.
  static LoopFilesystem* kept_mounted = nullptr;
  kept_mounted = new LoopFilesystem(std::move(*pool));
  return std::string("loop pool: " + probe->filesystem + " at " + volumes + " cannot reflink (" + probe->reason +
                     "); mounted XFS image " + kept_mounted->image_path() + " from " + kept_mounted->device() +
                     " there");
}

}  // namespace fe::storage::loop
