// Test helpers for making files and trees and for checking what a clone produced: sparse-aware content
// digests, allocation and FIEMAP sharing, xattrs, and whole-tree snapshots that can be diffed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace fe::test {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;

// Deterministic, incompressible-looking bytes; `seed` selects the stream, `offset` the position in it.
void FillPattern(char* buffer, size_t size, uint64_t seed, uint64_t offset);

Status WriteFile(const std::string& path, std::string_view content, mode_t mode = 0644);
Result<std::string> ReadFile(const std::string& path);
// Writes `size` pattern bytes (seeded) as the whole content of a new file.
Status WritePatternFile(const std::string& path, uint64_t size, uint64_t seed);

struct DataRange {
  uint64_t offset = 0;
  uint64_t length = 0;
};
// `count` ranges of `length` bytes spread evenly over [0, file_size), 1 MiB aligned.
std::vector<DataRange> SpreadRanges(uint64_t file_size, uint64_t count, uint64_t length);
// A new file of apparent size `size` holding pattern data only in `ranges`; the rest are holes.
Status MakeSparseFile(const std::string& path, uint64_t size, const std::vector<DataRange>& ranges, uint64_t seed);
// Overwrites `length` bytes at `offset` of an existing file with other pattern data.
Status OverwriteRange(const std::string& path, uint64_t offset, uint64_t length, uint64_t seed);

// Content identity independent of how the content is laid out: the size plus a hash of every
// non-zero 4 KiB block and its offset. Holes are skipped with SEEK_DATA, so a 10 GiB sparse file costs
// only its data. Equal digests <=> equal content (up to hash collisions).
struct Digest {
  uint64_t size = 0;
  uint64_t hash = 0;
  bool operator==(const Digest&) const = default;
};
Result<Digest> ContentDigest(const std::string& path);
std::string ToString(const Digest& digest);

// st_blocks * 512, without following symlinks.
Result<uint64_t> AllocatedBytes(const std::string& path);
// Bytes of the file's extents that FIEMAP flags FIEMAP_EXTENT_SHARED (after syncing the file).
Result<uint64_t> SharedBytes(const std::string& path);

// All extended attributes of `path` (not following symlinks), name -> value.
Result<std::map<std::string, std::string>> Xattrs(const std::string& path);

// Names in a directory, sorted, without "." and "..".
Result<std::vector<std::string>> ListDir(const std::string& path);

int64_t ToNs(const struct timespec& ts);

// One entry of a tree, as lstat and friends see it.
struct EntryInfo {
  char type = '?';  // f d l s p c b
  mode_t mode = 0;  // st_mode
  uid_t uid = 0;
  gid_t gid = 0;
  uint64_t size = 0;  // regular files and symlinks only
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t nlink = 0;  // non-directories only
  std::string link_target;
  std::map<std::string, std::string> xattrs;
  Digest digest;           // regular files
  std::string link_group;  // for hard-linked files: the smallest path of the inode, else empty
  uint64_t inode = 0;
};
using TreeSnapshot = std::map<std::string, EntryInfo>;  // path relative to the root ("" is the root)

// Walks `root` without following symlinks.
Result<TreeSnapshot> SnapshotTree(const std::string& root);

struct SnapshotCompare {
  bool ctime = false;      // include ctime (proves nothing wrote the inode at all)
  bool root_times = true;  // compare the root's own times (false: only its entries)
};
// Human-readable list of differences; empty when the snapshots match.
std::string DiffSnapshots(const TreeSnapshot& expected, const TreeSnapshot& actual, SnapshotCompare compare = {});

// Loop devices (/dev/loopN) whose backing file is `image_path`.
std::vector<std::string> LoopDevicesBackedBy(const std::string& image_path);
// The filesystem type mounted exactly at `path`, or empty when nothing is mounted there.
std::string MountedFsType(const std::string& path);

}  // namespace fe::test
