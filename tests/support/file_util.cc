#include "tests/support/file_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "base/unique_fd.h"

namespace fe::test {
namespace {

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kBuffer = 1 * kMiB;

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t Fnv1a(const char* data, size_t size, uint64_t hash) {
  for (size_t i = 0; i < size; ++i) {
    hash ^= static_cast<unsigned char>(data[i]);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

Status WriteAll(int fd, const char* data, size_t size, uint64_t offset, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "pwrite", path);
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status WritePatternAt(int fd, uint64_t offset, uint64_t length, uint64_t seed, const std::string& path) {
  std::unique_ptr<char[]> buffer(new char[kBuffer]);
  while (length > 0) {
    size_t chunk = static_cast<size_t>(std::min(length, kBuffer));
    FillPattern(buffer.get(), chunk, seed, offset);
    FE_RETURN_IF_ERROR(WriteAll(fd, buffer.get(), chunk, offset, path));
    offset += chunk;
    length -= chunk;
  }
  return Status::Ok();
}

char TypeChar(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return 'f';
    case S_IFDIR: return 'd';
    case S_IFLNK: return 'l';
    case S_IFSOCK: return 's';
    case S_IFIFO: return 'p';
    case S_IFCHR: return 'c';
    case S_IFBLK: return 'b';
  }
  return '?';
}

Status Walk(const std::string& root, const std::string& rel, TreeSnapshot* out) {
  std::string path = rel.empty() ? root : root + "/" + rel;
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "lstat", path);
  EntryInfo& info = (*out)[rel];
  info.type = TypeChar(st.st_mode);
  info.mode = st.st_mode;
  info.uid = st.st_uid;
  info.gid = st.st_gid;
  info.mtime_ns = ToNs(st.st_mtim);
  info.ctime_ns = ToNs(st.st_ctim);
  info.inode = st.st_ino;
  if (!S_ISDIR(st.st_mode)) info.nlink = st.st_nlink;
  if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) info.size = static_cast<uint64_t>(st.st_size);
  Result<std::map<std::string, std::string>> xattrs = Xattrs(path);
  if (!xattrs.ok()) return xattrs.status();
  info.xattrs = std::move(*xattrs);
  if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
    if (n < 0) return Status::FromErrno(errno, "readlink", path);
    target.resize(static_cast<size_t>(n));
    info.link_target = std::move(target);
  } else if (S_ISREG(st.st_mode)) {
    Result<Digest> digest = ContentDigest(path);
    if (!digest.ok()) return digest.status();
    info.digest = *digest;
  } else if (S_ISDIR(st.st_mode)) {
    Result<std::vector<std::string>> names = ListDir(path);
    if (!names.ok()) return names.status();
    for (const std::string& name : *names) {
      FE_RETURN_IF_ERROR(Walk(root, rel.empty() ? name : rel + "/" + name, out));
    }
  }
  return Status::Ok();
}

}  // namespace

void FillPattern(char* buffer, size_t size, uint64_t seed, uint64_t offset) {
  // Word i of the stream is SplitMix(seed ^ i): any offset can be produced directly.
  size_t done = 0;
  while (done < size) {
    uint64_t position = offset + done;
    uint64_t word = SplitMix((seed * 0x2545f4914f6cdd1dull) ^ (position / 8));
    size_t skip = position % 8;
    size_t take = std::min<size_t>(8 - skip, size - done);
    std::memcpy(buffer + done, reinterpret_cast<const char*>(&word) + skip, take);
    done += take;
  }
}

Status WriteFile(const std::string& path, std::string_view content, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) return Status::FromErrno(errno, "creating", path);
  return WriteAll(fd.get(), content.data(), content.size(), 0, path);
}

Result<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::FromErrno(errno, "opening", path);
  std::string content;
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "reading", path);
    }
    if (n == 0) break;
    content.append(buffer, static_cast<size_t>(n));
  }
  return content;
}

Status WritePatternFile(const std::string& path, uint64_t size, uint64_t seed) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return Status::FromErrno(errno, "creating", path);
  return WritePatternAt(fd.get(), 0, size, seed, path);
}

std::vector<DataRange> SpreadRanges(uint64_t file_size, uint64_t count, uint64_t length) {
  std::vector<DataRange> ranges;
  if (count == 0) return ranges;
  uint64_t stride = file_size / count;
  for (uint64_t i = 0; i < count; ++i) {
    // Start a little into each stride so the file begins and ends with a hole.
    uint64_t offset = (i * stride + stride / 4) / kMiB * kMiB;
    ranges.push_back({offset, std::min(length, file_size - offset)});
  }
  return ranges;
}

Status MakeSparseFile(const std::string& path, uint64_t size, const std::vector<DataRange>& ranges, uint64_t seed) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd) return Status::FromErrno(errno, "creating", path);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return Status::FromErrno(errno, "ftruncate", path);
  }
  for (const DataRange& range : ranges) {
    FE_RETURN_IF_ERROR(WritePatternAt(fd.get(), range.offset, range.length, seed, path));
  }
  if (::fsync(fd.get()) != 0) return Status::FromErrno(errno, "fsync", path);
  return Status::Ok();
}

Status OverwriteRange(const std::string& path, uint64_t offset, uint64_t length, uint64_t seed) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Status::FromErrno(errno, "opening", path);
  FE_RETURN_IF_ERROR(WritePatternAt(fd.get(), offset, length, seed, path));
  if (::fsync(fd.get()) != 0) return Status::FromErrno(errno, "fsync", path);
  return Status::Ok();
}

Result<Digest> ContentDigest(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return Status::FromErrno(errno, "opening", path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno(errno, "fstat", path);
  Digest digest;
  digest.size = static_cast<uint64_t>(st.st_size);
  digest.hash = 0xcbf29ce484222325ull;

  static const char kZero[kBlock] = {};
  std::unique_ptr<char[]> buffer(new char[kBuffer]);
  uint64_t next_block = 0;  // first block offset not yet hashed
  off_t position = 0;
  while (static_cast<uint64_t>(position) < digest.size) {
    off_t data = ::lseek(fd.get(), position, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      return Status::FromErrno(errno, "SEEK_DATA", path);
    }
    off_t hole = ::lseek(fd.get(), data, SEEK_HOLE);
    if (hole < 0) return Status::FromErrno(errno, "SEEK_HOLE", path);
    uint64_t begin = std::max(static_cast<uint64_t>(data) / kBlock * kBlock, next_block);
    uint64_t end = std::min<uint64_t>((static_cast<uint64_t>(hole) + kBlock - 1) / kBlock * kBlock,
                                      (digest.size + kBlock - 1) / kBlock * kBlock);
    while (begin < end) {
      size_t want = static_cast<size_t>(std::min(end - begin, kBuffer));
      ssize_t n = ::pread(fd.get(), buffer.get(), want, static_cast<off_t>(begin));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(errno, "pread", path);
      }
      if (n == 0) break;
      std::memset(buffer.get() + n, 0, want - static_cast<size_t>(n));
      for (size_t block = 0; block < want; block += kBlock) {
        size_t len = std::min<size_t>(kBlock, want - block);
        if (std::memcmp(buffer.get() + block, kZero, len) == 0) continue;
        uint64_t offset = begin + block;
        uint64_t block_hash = Fnv1a(buffer.get() + block, len, 0xcbf29ce484222325ull ^ offset);
        digest.hash = SplitMix(digest.hash ^ block_hash);
      }
      begin += want;
    }
    next_block = std::max(next_block, end);
    position = hole;
  }
  return digest;
}

std::string ToString(const Digest& digest) {
  std::ostringstream out;
  out << "{size=" << digest.size << " hash=" << std::hex << digest.hash << "}";
  return out.str();
}

Result<uint64_t> AllocatedBytes(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "lstat", path);
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

Result<uint64_t> SharedBytes(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return Status::FromErrno(errno, "opening", path);
  constexpr uint32_t kExtents = 256;
  std::vector<char> storage(sizeof(struct fiemap) + kExtents * sizeof(struct fiemap_extent));
  auto* map = reinterpret_cast<struct fiemap*>(storage.data());
  uint64_t shared = 0;
  uint64_t start = 0;
  for (;;) {
    std::memset(storage.data(), 0, storage.size());
    map->fm_start = start;
    map->fm_length = FIEMAP_MAX_OFFSET - start;
    map->fm_flags = FIEMAP_FLAG_SYNC;
    map->fm_extent_count = kExtents;
    if (::ioctl(fd.get(), FS_IOC_FIEMAP, map) != 0) return Status::FromErrno(errno, "FIEMAP", path);
    if (map->fm_mapped_extents == 0) break;
    bool last = false;
    for (uint32_t i = 0; i < map->fm_mapped_extents; ++i) {
      const struct fiemap_extent& extent = map->fm_extents[i];
      if (extent.fe_flags & FIEMAP_EXTENT_SHARED) shared += extent.fe_length;
      if (extent.fe_flags & FIEMAP_EXTENT_LAST) last = true;
      start = extent.fe_logical + extent.fe_length;
    }
    if (last) break;
  }
  return shared;
}

Result<std::map<std::string, std::string>> Xattrs(const std::string& path) {
  std::map<std::string, std::string> result;
  ssize_t size = ::llistxattr(path.c_str(), nullptr, 0);
  if (size < 0) {
    if (errno == ENOTSUP) return result;
    return Status::FromErrno(errno, "llistxattr", path);
  }
  std::string names(static_cast<size_t>(size), '\0');
  size = ::llistxattr(path.c_str(), names.data(), names.size());
  if (size < 0) return Status::FromErrno(errno, "llistxattr", path);
  names.resize(static_cast<size_t>(size));
  for (size_t pos = 0; pos < names.size();) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    ssize_t value_size = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (value_size < 0) return Status::FromErrno(errno, "lgetxattr " + name, path);
    std::string value(static_cast<size_t>(value_size), '\0');
    value_size = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (value_size < 0) return Status::FromErrno(errno, "lgetxattr " + name, path);
    value.resize(static_cast<size_t>(value_size));
    result.emplace(std::move(name), std::move(value));
  }
  return result;
}

Result<std::vector<std::string>> ListDir(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return Status::FromErrno(errno, "opendir", path);
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return Status::FromErrno(err, "readdir", path);
  std::sort(names.begin(), names.end());
  return names;
}

int64_t ToNs(const struct timespec& ts) { return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec; }

Result<TreeSnapshot> SnapshotTree(const std::string& root) {
  TreeSnapshot snapshot;
  FE_RETURN_IF_ERROR(Walk(root, "", &snapshot));
  // Hard-link groups, named by their smallest path so that two trees can be compared.
  std::map<uint64_t, std::string> first_path;
  for (auto& [path, info] : snapshot) {
    if (info.type == 'd' || info.nlink < 2) continue;
    auto [it, inserted] = first_path.emplace(info.inode, path);
    info.link_group = it->second;
  }
  return snapshot;
}

std::string DiffSnapshots(const TreeSnapshot& expected, const TreeSnapshot& actual, SnapshotCompare compare) {
  std::ostringstream out;
  for (const auto& [path, want] : expected) {
    auto it = actual.find(path);
    const std::string name = path.empty() ? "<root>" : path;
    if (it == actual.end()) {
      out << "missing: " << name << "\n";
      continue;
    }
    const EntryInfo& got = it->second;
    auto field = [&](const char* what, const auto& a, const auto& b) {
      if (!(a == b)) out << name << ": " << what << " expected " << a << " got " << b << "\n";
    };
    field("type", want.type, got.type);
    if (want.mode != got.mode) {
      out << name << ": mode expected " << std::oct << want.mode << " got " << got.mode << std::dec << "\n";
    }
    field("uid", want.uid, got.uid);
    field("gid", want.gid, got.gid);
    field("size", want.size, got.size);
    const bool times = !path.empty() || compare.root_times;
    if (times) field("mtime_ns", want.mtime_ns, got.mtime_ns);
    if (times && compare.ctime) field("ctime_ns", want.ctime_ns, got.ctime_ns);
    field("nlink", want.nlink, got.nlink);
    field("link_target", want.link_target, got.link_target);
    field("link_group", want.link_group, got.link_group);
    field("digest", ToString(want.digest), ToString(got.digest));
    if (want.xattrs != got.xattrs) {
      out << name << ": xattrs differ (expected " << want.xattrs.size() << ", got " << got.xattrs.size() << ")\n";
    }
  }
  for (const auto& [path, info] : actual) {
    if (!expected.contains(path)) out << "unexpected: " << path << "\n";
  }
  return out.str();
}

std::vector<std::string> LoopDevicesBackedBy(const std::string& image_path) {
  std::vector<std::string> devices;
  Result<std::vector<std::string>> names = ListDir("/sys/block");
  if (!names.ok()) return devices;
  for (const std::string& name : *names) {
    if (name.rfind("loop", 0) != 0) continue;
    Result<std::string> backing = ReadFile("/sys/block/" + name + "/loop/backing_file");
    if (!backing.ok()) continue;  // not bound
    std::string file = *backing;
    while (!file.empty() && file.back() == '\n') file.pop_back();
    if (file == image_path || file == image_path + " (deleted)") devices.push_back("/dev/" + name);
  }
  return devices;
}

std::string MountedFsType(const std::string& path) {
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  std::string type;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string device, mount_point, fstype;
    fields >> device >> mount_point >> fstype;
    if (mount_point == path) type = fstype;  // the last one is on top
  }
  return type;
}

}  // namespace fe::test
