#include "bench/tree_facts.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "base/unique_fd.h"

namespace fe::bench {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kSampleBytes = 64 * 1024;

Result<UniqueFd> OpenForReading(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return Status::FromErrno(errno, "open", path);
  return fd;
}

Result<std::string> ReadAt(int fd, uint64_t offset, uint64_t length, const std::string& path) {
  std::string bytes(length, '\0');
  uint64_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd, bytes.data() + done, length - done, offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, "pread", path);
    if (n == 0) break;
    done += n;
  }
  bytes.resize(done);
  return bytes;
}

// Offsets where the source's data segments start, so holes are not read.
Result<std::vector<uint64_t>> DataSegmentStarts(int fd, uint64_t size, const std::string& path) {
  std::vector<uint64_t> starts;
  off_t offset = 0;
  while (static_cast<uint64_t>(offset) < size) {
    off_t data = ::lseek(fd, offset, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;
    if (data < 0) return Status::FromErrno(errno, "lseek SEEK_DATA", path);
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return Status::FromErrno(errno, "lseek SEEK_HOLE", path);
    starts.push_back(data);
    offset = hole;
  }
  return starts;
}

Status CheckSameFile(const std::string& source, const std::string& copy, uint64_t size) {
  Result<UniqueFd> source_fd = OpenForReading(source);
  FE_RETURN_IF_ERROR(source_fd.status());
  Result<UniqueFd> copy_fd = OpenForReading(copy);
  FE_RETURN_IF_ERROR(copy_fd.status());
  Result<std::vector<uint64_t>> starts = DataSegmentStarts(source_fd->get(), size, source);
  FE_RETURN_IF_ERROR(starts.status());
  for (uint64_t start : *starts) {
    uint64_t length = std::min(kSampleBytes, size - start);
    Result<std::string> expected = ReadAt(source_fd->get(), start, length, source);
    FE_RETURN_IF_ERROR(expected.status());
    Result<std::string> actual = ReadAt(copy_fd->get(), start, length, copy);
    FE_RETURN_IF_ERROR(actual.status());
    if (*expected != *actual) {
      return Status::Internal(copy + " differs from " + source + " at offset " + std::to_string(start));
    }
  }
  return Status::Ok();
}

}  // namespace

Result<TreeListing> ListTree(const std::string& root) {
  TreeListing listing;
  std::error_code error;
  // The iterator yields parents before their children, which is the order mkdir needs.
  for (fs::recursive_directory_iterator it(root, error), end; !error && it != end; it.increment(error)) {
    std::string relative = fs::relative(it->path(), root).string();
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0) return Status::FromErrno(errno, "lstat", it->path().string());
    if (S_ISDIR(st.st_mode)) {
      listing.directories.push_back(relative);
    } else if (S_ISREG(st.st_mode)) {
      listing.files.push_back(relative);
      listing.logical_bytes += st.st_size;
      listing.allocated_bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    }
  }
  if (error) return Status::FromErrno(error.value(), "listing", root);
  return listing;
}

Status CheckSameTree(const std::string& source, const std::string& copy, bool compare_modes) {
  Result<TreeListing> expected = ListTree(source);
  FE_RETURN_IF_ERROR(expected.status());
  Result<TreeListing> actual = ListTree(copy);
  FE_RETURN_IF_ERROR(actual.status());
  auto sorted = [](std::vector<std::string> names) {
    std::sort(names.begin(), names.end());
    return names;
  };
  if (sorted(expected->directories) != sorted(actual->directories) ||
      sorted(expected->files) != sorted(actual->files)) {
    return Status::Internal(copy + " does not have the same entries as " + source);
  }
  for (const std::string& file : expected->files) {
    struct stat want, got;
    std::string source_path = source + "/" + file, copy_path = copy + "/" + file;
    if (::lstat(source_path.c_str(), &want) != 0) return Status::FromErrno(errno, "lstat", source_path);
    if (::lstat(copy_path.c_str(), &got) != 0) return Status::FromErrno(errno, "lstat", copy_path);
    bool same_mode = (want.st_mode & 07777) == (got.st_mode & 07777);
    if (want.st_size != got.st_size || (compare_modes && !same_mode)) {
      return Status::Internal(copy_path + ": size or mode differs from the source");
    }
    FE_RETURN_IF_ERROR(CheckSameFile(source_path, copy_path, want.st_size));
  }
  // Holes must stay holes; allow slack for filesystems that allocate a little more (preallocation).
  if (actual->allocated_bytes > expected->allocated_bytes + expected->allocated_bytes / 8 + (16 << 20)) {
    return Status::Internal(copy + " allocates " + std::to_string(actual->allocated_bytes) +
                            " bytes, the source only " + std::to_string(expected->allocated_bytes));
  }
  return Status::Ok();
}

Result<ExtentSharing> MeasureSharing(const std::string& root) {
  Result<TreeListing> listing = ListTree(root);
  FE_RETURN_IF_ERROR(listing.status());
  constexpr unsigned kExtentsPerCall = 256;
  std::vector<char> buffer(sizeof(fiemap) + kExtentsPerCall * sizeof(fiemap_extent));
  auto* map = reinterpret_cast<fiemap*>(buffer.data());
  ExtentSharing sharing;
  for (const std::string& file : listing->files) {
    std::string path = root + "/" + file;
    Result<UniqueFd> fd = OpenForReading(path);
    FE_RETURN_IF_ERROR(fd.status());
    uint64_t start = 0;
    bool last = false;
    while (!last) {
      std::memset(buffer.data(), 0, buffer.size());
      map->fm_start = start;
      map->fm_length = FIEMAP_MAX_OFFSET - start;
      map->fm_flags = FIEMAP_FLAG_SYNC;
      map->fm_extent_count = kExtentsPerCall;
      if (::ioctl(fd->get(), FS_IOC_FIEMAP, map) != 0) return Status::FromErrno(errno, "FIEMAP", path);
      if (map->fm_mapped_extents == 0) break;
      for (unsigned i = 0; i < map->fm_mapped_extents; ++i) {
        const fiemap_extent& extent = map->fm_extents[i];
        sharing.mapped_bytes += extent.fe_length;
        if (extent.fe_flags & FIEMAP_EXTENT_SHARED) sharing.shared_bytes += extent.fe_length;
        if (extent.fe_flags & FIEMAP_EXTENT_LAST) last = true;
        start = extent.fe_logical + extent.fe_length;
      }
    }
  }
  return sharing;
}

namespace {

std::string SharingNote(const ExtentSharing& sharing) {
  if (sharing.mapped_bytes == 0) return "no data extents";
  if (sharing.shared_bytes == 0) return "copied all data";
  double percent = 100.0 * sharing.shared_bytes / sharing.mapped_bytes;
  return percent > 99.9 ? "shares all data" : fmt::format("shares {:.1f}% of data", percent);
}

}  // namespace

WarmupCheck CheckWarmup(const std::string& source, const std::string& copy, bool compare_modes,
                        const std::string& what) {
  WarmupCheck check;
  Status same = CheckSameTree(source, copy, compare_modes);
  Result<ExtentSharing> sharing = MeasureSharing(copy);
  if (!same.ok()) check.error = "wrong result: " + same.ToString();
  if (!sharing.ok()) check.error = sharing.status().ToString();
  if (check.error.empty()) check.note = (what.empty() ? "" : what + "; ") + SharingNote(*sharing);
  return check;
}

}  // namespace fe::bench
