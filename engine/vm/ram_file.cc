#include "engine/vm/ram_file.h"

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

#include "base/atomic_file.h"
#include "base/confined_dir.h"
#include "engine/vm/ram_preflush.h"

namespace fe::engine::vm {
namespace {

constexpr size_t kChunk = size_t{8} << 20;

// Whether the open file is allocated in full, in few extents.
bool LaidOut(int fd, uint64_t bytes, const std::string& display) {
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) return false;
  if (static_cast<uint64_t>(info.st_size) != bytes || static_cast<uint64_t>(info.st_blocks) * 512 < bytes) return false;
  Result<uint64_t> extents = ExtentCount(fd, display);
  return extents.ok() && *extents <= kLaidOutExtents;
}

}  // namespace

Result<uint64_t> ExtentCount(int fd, const std::string& display) {
  fiemap map{};
  map.fm_start = 0;
  map.fm_length = FIEMAP_MAX_OFFSET;
  map.fm_extent_count = 0;  // count only
  if (::ioctl(fd, FS_IOC_FIEMAP, &map) != 0) return Status::FromErrno(errno, "FIEMAP", display);
  return static_cast<uint64_t>(map.fm_mapped_extents);
}

Result<bool> LayOutRamFileForBoot(const std::string& guest_dir, const hypervisor::MemoryFile& file) {
  const std::string what = "laying out RAM file " + file.path;
  if (file.path.size() <= guest_dir.size() + 1 || file.path.compare(0, guest_dir.size() + 1, guest_dir + "/") != 0) {
    return Status::InvalidArgument(what + ": not in " + guest_dir);
  }
  const std::string relative = file.path.substr(guest_dir.size() + 1);
  const size_t slash = relative.rfind('/');
  const std::string parent = slash == std::string::npos ? "" : relative.substr(0, slash);
  const std::string name = slash == std::string::npos ? relative : relative.substr(slash + 1);
  Result<ConfinedDir> volume = ConfinedDir::Open(guest_dir);
  if (!volume.ok()) return volume.status().Annotate(what);
  Result<ConfinedDir> dir = parent.empty() ? std::move(volume) : volume->OpenSubdirectory(parent);
  if (!dir.ok()) return dir.status().Annotate(what);

  if (dir->IsRegularFile(name)) {
    Result<UniqueFd> existing = dir->OpenFile(name, O_RDONLY | O_CLOEXEC);
    if (existing.ok() && LaidOut(existing->get(), file.bytes, file.path)) return false;
  }
  Result<std::pair<UniqueFd, std::string>> created = CreateTemporaryFileAt(dir->fd(), dir->path(), name);
  if (!created.ok()) return created.status().Annotate(what);
  UniqueFd fd = std::move(created->first);
  const std::string temporary = std::move(created->second);
  auto fail = [&](Status status) {
    (void)dir->Remove(temporary);
    return status.Annotate(what);
  };
  const std::vector<char> zeros(kChunk, 0);
  for (uint64_t offset = 0; offset < file.bytes;) {
    const size_t length = static_cast<size_t>(std::min<uint64_t>(kChunk, file.bytes - offset));
    const ssize_t written = ::pwrite(fd.get(), zeros.data(), length, static_cast<off_t>(offset));
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return fail(Status::FromErrno(written < 0 ? errno : ENOSPC, "write", dir->PathOf(temporary)));
    offset += static_cast<uint64_t>(written);
  }
  // Written back now, so the guest's first live fork does not find the whole file dirty.
  if (Status written_back = WriteBackDirtyPages(fd.get(), dir->PathOf(temporary)); !written_back.ok()) {
    return fail(written_back);
  }
  if (::renameat(dir->fd(), temporary.c_str(), dir->fd(), name.c_str()) != 0) {
    return fail(Status::FromErrno(errno, "rename " + dir->PathOf(temporary) + " to", file.path));
  }
  return true;
}

}  // namespace fe::engine::vm
