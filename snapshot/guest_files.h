// A guest directory as a list of its files and their data (issue #22: replication of a template to
// another node). What a replica must hold to be the same guest: every directory, regular file and
// contained symlink, each file's size and the extents that hold data (holes are not listed, so a
// sparse disk stays sparse on the other side), cut into chunks of at most chunk_bytes, each with its
// SHA-256. The list's own SHA-256 (content_hash) names the content: two lists with one hash describe
// byte-identical trees.
//
// The source lists its volume (ListGuestFiles, walked beneath it, never following a link); the
// target checks a list it is sent (GuestFileListFromJson) before it makes any file of it: every path
// relative and downward, symlinks contained (snapshot/tree_check.h), chunks inside their file, in
// order, not overlapping, and the hash matching what the list says.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/confined_dir.h"
#include "base/status.h"

namespace fe::snapshot {

inline constexpr uint64_t kDefaultChunkBytes = 4ull << 20;
inline constexpr uint64_t kMaxChunkBytes = 16ull << 20;

struct FileChunk {
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string sha256;  // of the chunk's bytes, 64 hex digits
  bool operator==(const FileChunk&) const = default;
};

struct GuestFile {
  enum class Type { kDirectory, kFile, kSymlink };
  std::string path;  // relative to the guest directory, '/'-separated; a directory precedes its entries
  Type type = Type::kFile;
  uint32_t mode = 0644;           // permission bits
  uint64_t size = 0;              // kFile
  std::string target;             // kSymlink
  std::vector<FileChunk> chunks;  // kFile: its data, in order
  bool operator==(const GuestFile&) const = default;
};

struct GuestFileList {
  uint64_t chunk_bytes = kDefaultChunkBytes;
  std::vector<GuestFile> files;
  std::string content_hash;  // ContentHashOf(*this)

  uint64_t DataBytes() const;  // the bytes of every chunk
  size_t ChunkCount() const;
};

// Walks `dir` and reads every data extent (the cost of a replication's first read, paid once per
// template). Sockets are left out, as a clone leaves them. The tree's limits are tree_check.h's.
Result<GuestFileList> ListGuestFiles(const ConfinedDir& dir, uint64_t chunk_bytes = kDefaultChunkBytes);

// The SHA-256 of the list's canonical JSON without its hash.
std::string ContentHashOf(const GuestFileList& list);

nlohmann::json GuestFileListToJson(const GuestFileList& list);
// InvalidArgument naming `origin` and the field for anything above the file comment refuses.
Result<GuestFileList> GuestFileListFromJson(const nlohmann::json& json, std::string_view origin);

// Whether `path` is relative, '/'-separated, with no empty, "." or ".." component.
bool IsDownwardRelativePath(std::string_view path);

}  // namespace fe::snapshot
