#include "storage/tree/directory_backend.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <atomic>
#include <set>
#include <utility>
#include <cerrno>
#include <vector>

#include "base/fs_util.h"
#include "storage/tree/tree_cloner.h"

namespace fe::storage::tree {
namespace {

// Bytes of `fd`'s extents flagged FIEMAP_EXTENT_SHARED, or nullopt when FIEMAP is unsupported.
std::optional<uint64_t> SharedBytes(int fd) {
  constexpr unsigned kExtentsPerCall = 256;
  std::vector<char> buffer(sizeof(fiemap) + kExtentsPerCall * sizeof(fiemap_extent));
  auto* map = reinterpret_cast<fiemap*>(buffer.data());
  uint64_t shared = 0;
  uint64_t start = 0;
  while (true) {
    std::fill(buffer.begin(), buffer.end(), 0);
    map->fm_start = start;
    map->fm_length = FIEMAP_MAX_OFFSET - start;
    map->fm_flags = FIEMAP_FLAG_SYNC;
    map->fm_extent_count = kExtentsPerCall;
    if (::ioctl(fd, FS_IOC_FIEMAP, map) != 0) return std::nullopt;
    if (map->fm_mapped_extents == 0) return shared;
    bool last = false;
    for (unsigned i = 0; i < map->fm_mapped_extents; ++i) {
      const fiemap_extent& extent = map->fm_extents[i];
      if (extent.fe_flags & FIEMAP_EXTENT_SHARED) shared += extent.fe_length;
      last = last || (extent.fe_flags & FIEMAP_EXTENT_LAST);
      start = extent.fe_logical + extent.fe_length;
    }
    if (last) return shared;
  }
}

struct MeasureState {
  VolumeUsage usage;
  bool fiemap_ok = true;
  std::set<std::pair<dev_t, ino_t>> linked;  // multiply-linked inodes already counted
};

Status MeasureInto(int dir_fd, const std::string& display, MeasureState& state) {
  VolumeUsage& usage = state.usage;
  std::vector<DirectoryEntry> entries;
  FE_RETURN_IF_ERROR(ReadDirectory(dir_fd, entries, display));
  for (const DirectoryEntry& entry : entries) {
    std::string path = JoinPath(display, entry.name);
    struct stat st;
    if (::fstatat(dir_fd, entry.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return Status::FromErrno(errno, "stat", path);
    }
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 && !state.linked.emplace(st.st_dev, st.st_ino).second) {
      continue;  // another name of an inode already counted
    }
    usage.allocated_bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    if (S_ISDIR(st.st_mode)) {
      Result<UniqueFd> child = OpenBeneath(dir_fd, entry.name, O_RDONLY | O_DIRECTORY, 0, path);
      if (!child.ok()) return child.status();
      FE_RETURN_IF_ERROR(MeasureInto(child->get(), path, state));
    } else if (S_ISREG(st.st_mode)) {
      usage.logical_bytes += static_cast<uint64_t>(st.st_size);
      if (!state.fiemap_ok || st.st_blocks == 0) continue;
      Result<UniqueFd> file = OpenBeneath(dir_fd, entry.name, O_RDONLY, 0, path);
      if (!file.ok()) return file.status();
      std::optional<uint64_t> shared = SharedBytes(file->get());
      if (shared) {
        *usage.shared_bytes += *shared;
      } else {
        state.fiemap_ok = false;
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Result<VolumeUsage> MeasureTree(int dir_fd, const std::string& display) {
  MeasureState state;
  state.usage.shared_bytes = 0;
  FE_RETURN_IF_ERROR(MeasureInto(dir_fd, display, state));
  if (!state.fiemap_ok) state.usage.shared_bytes.reset();
  state.usage.method = state.fiemap_ok ? "fiemap" : "st_blocks";
  return state.usage;
}

Result<UniqueFd> OpenDataRoot(const std::string& root) {
  if (::mkdir(root.c_str(), 0711) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "create data root", root);
  }
  UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Status::FromErrno(errno, "open data root", root);
  return fd;
}

std::string DirectoryBackend::Path(const std::string& volume) const { return JoinPath(root_, volume); }

Status DirectoryBackend::NotFound(const std::string& volume) const {
  return Status::NotFound("volume " + Path(volume) + " does not exist");
}

Status DirectoryBackend::AlreadyExists(const std::string& volume) const {
  return Status::AlreadyExists("volume " + Path(volume) + " already exists");
}

Result<std::string> DirectoryBackend::RenameAway(const std::string& volume) {
  FE_RETURN_IF_ERROR(ValidateVolumeName(volume));
  static std::atomic<uint64_t> counter{0};
  std::string doomed =
      "." + volume + ".forkengine-removing-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  if (::renameat2(root_fd(), volume.c_str(), root_fd(), doomed.c_str(), RENAME_NOREPLACE) != 0) {
    if (errno == ENOENT) return NotFound(volume);
    return Status::FromErrno(errno, "remove volume", Path(volume));
  }
  return doomed;
}

Result<VolumeUsage> DirectoryBackend::Usage(const std::string& volume) {
  FE_RETURN_IF_ERROR(ValidateVolumeName(volume));
  Result<UniqueFd> dir = OpenBeneath(root_fd(), volume, O_RDONLY | O_DIRECTORY, 0, Path(volume));
  if (!dir.ok()) return dir.status();
  return MeasureTree(dir->get(), Path(volume));
}

Result<std::vector<std::string>> DirectoryBackend::List() {
  Result<UniqueFd> dir = OpenBeneath(root_fd(), ".", O_RDONLY | O_DIRECTORY, 0, root_);
  if (!dir.ok()) return dir.status();
  std::vector<DirectoryEntry> entries;
  FE_RETURN_IF_ERROR(ReadDirectory(dir->get(), entries, root_));
  std::vector<std::string> volumes;
  for (DirectoryEntry& entry : entries) {
    if (entry.type == DT_DIR && ValidateVolumeName(entry.name).ok()) volumes.push_back(std::move(entry.name));
  }
  std::sort(volumes.begin(), volumes.end());
  return volumes;
}

namespace {

// Hidden names made by the tree cloner and the btrfs backend (".<volume>.forkengine-tmp-<pid>-<n>")
// and by RenameAway (".<volume>.forkengine-removing-<pid>-<n>").
bool IsLeftoverName(std::string_view name) {
  return name.starts_with(".") && (name.find(".forkengine-tmp-") != std::string_view::npos ||
                                   name.find(".forkengine-removing-") != std::string_view::npos);
}

}  // namespace

Result<CloneReport> DirectoryBackend::Import(const std::string& source_dir, const std::string& volume) {
  return ImportWith(source_dir, volume, [&](int) { return Create(volume); });
}

Result<CloneReport> DirectoryBackend::ImportWith(const std::string& source_dir, const std::string& volume,
                                                 const std::function<Status(int source_fd)>& create) {
  if (source_dir.empty() || source_dir.front() != '/' || source_dir == "/") {
    return Status::InvalidArgument("import source '" + source_dir + "' is not an absolute path of a directory");
  }
  const size_t slash = source_dir.find_last_of('/');
  const std::string parent = slash == 0 ? "/" : source_dir.substr(0, slash);
  const std::string name = source_dir.substr(slash + 1);
  UniqueFd parent_fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent_fd) return Status::FromErrno(errno, "open", parent);
  FE_ASSIGN_OR_RETURN(UniqueFd source_fd, OpenBeneath(parent_fd.get(), name, O_RDONLY | O_DIRECTORY, 0, source_dir));
  FE_RETURN_IF_ERROR(create(source_fd.get()));
  Result<CloneReport> report = [&]() -> Result<CloneReport> {
    FE_ASSIGN_OR_RETURN(UniqueFd target_fd, OpenBeneath(root_fd(), volume, O_RDONLY | O_DIRECTORY, 0, Path(volume)));
    return CloneContents(parent_fd.get(), name, target_fd.get(), CloneOptions{});
  }();
  if (!report.ok()) {
    if (Status removed = Remove(volume); !removed.ok()) {
      return report.status().Annotate("import of " + source_dir +
                                      " (removing the half-made volume also failed: " + removed.ToString() + ")");
    }
    return report.status().Annotate("import of " + source_dir);
  }
  return report;
}

Result<std::vector<std::string>> DirectoryBackend::RemoveLeftovers() {
  Result<UniqueFd> dir = OpenBeneath(root_fd(), ".", O_RDONLY | O_DIRECTORY, 0, root_);
  if (!dir.ok()) return dir.status();
  std::vector<DirectoryEntry> entries;
  FE_RETURN_IF_ERROR(ReadDirectory(dir->get(), entries, root_));
  std::vector<std::string> removed;
  for (const DirectoryEntry& entry : entries) {
    if (entry.type != DT_DIR || !IsLeftoverName(entry.name)) continue;
    FE_RETURN_IF_ERROR(RemoveLeftover(entry.name).Annotate("removing leftover " + root_ + "/" + entry.name));
    removed.push_back(entry.name);
  }
  std::sort(removed.begin(), removed.end());
  return removed;
}

Status DirectoryBackend::RemoveLeftover(const std::string& name) { return RemoveTree(root_fd(), name); }

}  // namespace fe::storage::tree
