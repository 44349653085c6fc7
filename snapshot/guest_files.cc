#include "snapshot/guest_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "base/fs_util.h"
#include "base/json_fields.h"
#include "base/sha256.h"
#include "snapshot/tree_check.h"

namespace fe::snapshot {
namespace {

using Json = nlohmann::json;

std::string_view TypeName(GuestFile::Type type) {
  switch (type) {
    case GuestFile::Type::kDirectory: return "directory";
    case GuestFile::Type::kFile: return "file";
    case GuestFile::Type::kSymlink: return "symlink";
  }
  return "file";
}

bool IsHexDigest(std::string_view text) {
  return text.size() == 64 &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Reads the data extents of the open file `fd` (SEEK_DATA/SEEK_HOLE) into chunks with their hashes.
Status ListChunks(int fd, uint64_t size, uint64_t chunk_bytes, const std::string& display,
                  std::vector<FileChunk>& chunks) {
  std::string buffer;
  off_t position = 0;
  while (static_cast<uint64_t>(position) < size) {
    const off_t data = ::lseek(fd, position, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole is left
      return Status::FromErrno(errno, "seek to data in", display);
    }
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return Status::FromErrno(errno, "seek to a hole in", display);
    hole = std::min<off_t>(hole, static_cast<off_t>(size));
    for (off_t offset = data; offset < hole;) {
      const uint64_t length = std::min<uint64_t>(chunk_bytes, static_cast<uint64_t>(hole - offset));
      buffer.resize(length);
      FE_RETURN_IF_ERROR(ReadAllAt(fd, buffer.data(), length, offset, display));
      chunks.push_back(FileChunk{static_cast<uint64_t>(offset), length, Sha256Hex(buffer)});
      offset += static_cast<off_t>(length);
    }
    position = hole;
  }
  return Status::Ok();
}

struct Lister {
  const ConfinedDir& root;
  uint64_t chunk_bytes;
  GuestFileList list;

  Status Directory(const std::string& relative, size_t depth) {
    if (depth > kMaxGuestTreeDepth) {
      return Status::InvalidContent(root.PathOf(relative) + ": nested deeper than " +
                                    std::to_string(kMaxGuestTreeDepth) + " directories");
    }
    FE_ASSIGN_OR_RETURN(UniqueFd dir, root.OpenFile(relative.empty() ? "." : relative, O_RDONLY | O_DIRECTORY));
    std::vector<DirectoryEntry> entries;
    FE_RETURN_IF_ERROR(ReadDirectory(dir.get(), entries, root.PathOf(relative)));
    std::sort(entries.begin(), entries.end(),
              [](const DirectoryEntry& a, const DirectoryEntry& b) { return a.name < b.name; });
    for (const DirectoryEntry& entry : entries) {
      if (list.files.size() >= kMaxGuestTreeEntries) {
        return Status::InvalidContent(root.path() + ": more than " + std::to_string(kMaxGuestTreeEntries) + " entries");
      }
      const std::string path = relative.empty() ? entry.name : relative + "/" + entry.name;
      struct stat st {};
      if (::fstatat(dir.get(), entry.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return Status::FromErrno(errno, "stat", root.PathOf(path));
      }
      GuestFile file;
      file.path = path;
      file.mode = st.st_mode & 07777;
      switch (st.st_mode & S_IFMT) {
        case S_IFSOCK: continue;
        case S_IFDIR:
          file.type = GuestFile::Type::kDirectory;
          list.files.push_back(std::move(file));
          FE_RETURN_IF_ERROR(Directory(path, depth + 1));
          continue;
        case S_IFLNK: {
          file.type = GuestFile::Type::kSymlink;
          std::string target(static_cast<size_t>(std::max<off_t>(st.st_size, 0)) + 1, '\0');
          const ssize_t length = ::readlinkat(dir.get(), entry.name.c_str(), target.data(), target.size());
          if (length < 0) return Status::FromErrno(errno, "read symlink", root.PathOf(path));
          target.resize(static_cast<size_t>(length));
          if (!IsContainedLinkTarget(target)) {
            return Status::InvalidContent(root.PathOf(path) + ": a symbolic link to '" + target +
                                          "', which leads out of the guest directory");
          }
          file.target = std::move(target);
          list.files.push_back(std::move(file));
          continue;
        }
        case S_IFREG: {
          file.type = GuestFile::Type::kFile;
          FE_ASSIGN_OR_RETURN(UniqueFd fd, root.OpenFile(path, O_RDONLY | O_NOFOLLOW));
          struct stat opened {};
          if (::fstat(fd.get(), &opened) != 0) return Status::FromErrno(errno, "stat", root.PathOf(path));
          file.size = static_cast<uint64_t>(opened.st_size);
          FE_RETURN_IF_ERROR(ListChunks(fd.get(), file.size, chunk_bytes, root.PathOf(path), file.chunks));
          list.files.push_back(std::move(file));
          continue;
        }
        default: return Status::InvalidContent(root.PathOf(path) + ": not a file, directory or contained symlink");
      }
    }
    return Status::Ok();
  }
};

Json FilesToJson(const GuestFileList& list) {
  Json files = Json::array();
  for (const GuestFile& file : list.files) {
    Json entry{{"path", file.path}, {"type", TypeName(file.type)}, {"mode", file.mode}};
    if (file.type == GuestFile::Type::kFile) {
      entry["size"] = file.size;
      Json chunks = Json::array();
      for (const FileChunk& chunk : file.chunks) {
        chunks.push_back(Json{{"offset", chunk.offset}, {"length", chunk.length}, {"sha256", chunk.sha256}});
      }
      entry["chunks"] = std::move(chunks);
    }
    if (file.type == GuestFile::Type::kSymlink) entry["target"] = file.target;
    files.push_back(std::move(entry));
  }
  return files;
}

Result<GuestFile> FileFromJson(const JsonFields& fields, uint64_t chunk_bytes, std::set<std::string>& directories) {
  GuestFile file;
  std::string type;
  FE_RETURN_IF_ERROR(fields.RejectUnknown({"path", "type", "mode", "size", "chunks", "target"}));
  FE_RETURN_IF_ERROR(fields.String("path", file.path, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("type", type, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.Number("mode", file.mode, JsonFields::kRequired, 0, 07777));
  if (!IsDownwardRelativePath(file.path))
    return fields.Fail("path", "'" + file.path + "' is not a relative path that goes down");
  const size_t slash = file.path.rfind('/');
  if (slash != std::string::npos && directories.count(file.path.substr(0, slash)) == 0) {
    return fields.Fail("path", "'" + file.path + "' comes before (or without) its directory");
  }
  if (type == "directory") {
    file.type = GuestFile::Type::kDirectory;
    directories.insert(file.path);
  } else if (type == "symlink") {
    file.type = GuestFile::Type::kSymlink;
    FE_RETURN_IF_ERROR(fields.String("target", file.target, JsonFields::kRequired));
    if (!IsContainedLinkTarget(file.target))
      return fields.Fail("target", "'" + file.target + "' leads out of the directory");
  } else if (type == "file") {
    file.type = GuestFile::Type::kFile;
    FE_RETURN_IF_ERROR(fields.Unsigned("size", file.size, JsonFields::kRequired, UINT64_MAX / 2));
    FE_ASSIGN_OR_RETURN(const Json* chunks, fields.Array("chunks", JsonFields::kRequired));
    uint64_t end = 0;
    for (size_t i = 0; i < chunks->size(); ++i) {
      const std::string at = "chunks[" + std::to_string(i) + "]";
      if (!(*chunks)[i].is_object()) return fields.Fail(at, "not an object");
      JsonFields chunk_fields = fields.Nested((*chunks)[i], at);
      FileChunk chunk;
      FE_RETURN_IF_ERROR(chunk_fields.RejectUnknown({"offset", "length", "sha256"}));
      FE_RETURN_IF_ERROR(chunk_fields.Unsigned("offset", chunk.offset, JsonFields::kRequired, file.size));
      FE_RETURN_IF_ERROR(chunk_fields.Unsigned("length", chunk.length, JsonFields::kRequired, chunk_bytes));
      FE_RETURN_IF_ERROR(chunk_fields.String("sha256", chunk.sha256, JsonFields::kRequired));
      if (chunk.length == 0 || chunk.offset < end || chunk.offset + chunk.length > file.size) {
        return fields.Fail(at, "empty, overlapping the one before it or past the file's size");
      }
      if (!IsHexDigest(chunk.sha256)) return chunk_fields.Fail("sha256", "not 64 lower-case hex digits");
      end = chunk.offset + chunk.length;
      file.chunks.push_back(std::move(chunk));
    }
  } else {
    return fields.Fail("type", "'" + type + "' is none of directory, file, symlink");
  }
  return file;
}

}  // namespace

uint64_t GuestFileList::DataBytes() const {
  uint64_t bytes = 0;
  for (const GuestFile& file : files)
    for (const FileChunk& chunk : file.chunks) bytes += chunk.length;
  return bytes;
}

size_t GuestFileList::ChunkCount() const {
  size_t count = 0;
  for (const GuestFile& file : files) count += file.chunks.size();
  return count;
}

bool IsDownwardRelativePath(std::string_view path) {
  if (path.empty() || path.front() == '/') return false;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t slash = std::min(path.find('/', start), path.size());
    const std::string_view component = path.substr(start, slash - start);
    if (component.empty() || component == "." || component == ".." || component.find('\0') != std::string_view::npos) {
      return false;
    }
    start = slash + 1;
  }
  return true;
}

Result<GuestFileList> ListGuestFiles(const ConfinedDir& dir, uint64_t chunk_bytes) {
  if (chunk_bytes == 0 || chunk_bytes > kMaxChunkBytes) {
    return Status::InvalidArgument("chunk size " + std::to_string(chunk_bytes) + " is outside 1.." +
                                   std::to_string(kMaxChunkBytes));
  }
  Lister lister{dir, chunk_bytes, {}};
  lister.list.chunk_bytes = chunk_bytes;
  FE_RETURN_IF_ERROR(lister.Directory("", 0));
  lister.list.content_hash = ContentHashOf(lister.list);
  return std::move(lister.list);
}

std::string ContentHashOf(const GuestFileList& list) {
  return Sha256Hex(Json{{"chunk_bytes", list.chunk_bytes}, {"files", FilesToJson(list)}}.dump());
}

Json GuestFileListToJson(const GuestFileList& list) {
  return Json{{"chunk_bytes", list.chunk_bytes}, {"files", FilesToJson(list)}, {"content_hash", list.content_hash}};
}

Result<GuestFileList> GuestFileListFromJson(const Json& json, std::string_view origin) {
  if (!json.is_object()) return Status::InvalidArgument(std::string(origin) + ": not a JSON object");
  JsonFields fields(json, std::string(origin));
  FE_RETURN_IF_ERROR(fields.RejectUnknown({"chunk_bytes", "files", "content_hash"}));
  GuestFileList list;
  FE_RETURN_IF_ERROR(fields.Number("chunk_bytes", list.chunk_bytes, JsonFields::kRequired, 1, kMaxChunkBytes));
  FE_RETURN_IF_ERROR(fields.String("content_hash", list.content_hash, JsonFields::kRequired));
  FE_ASSIGN_OR_RETURN(const Json* files, fields.Array("files", JsonFields::kRequired));
  if (files->size() > kMaxGuestTreeEntries)
    return fields.Fail("files", "more than " + std::to_string(kMaxGuestTreeEntries) + " entries");
  std::set<std::string> directories, paths;
  for (size_t i = 0; i < files->size(); ++i) {
    const std::string at = "files[" + std::to_string(i) + "]";
    if (!(*files)[i].is_object()) return fields.Fail(at, "not an object");
    FE_ASSIGN_OR_RETURN(GuestFile file, FileFromJson(fields.Nested((*files)[i], at), list.chunk_bytes, directories));
    if (!paths.insert(file.path).second) return fields.Fail(at + ".path", "'" + file.path + "' is listed twice");
    list.files.push_back(std::move(file));
  }
  if (ContentHashOf(list) != list.content_hash) {
    return fields.Fail("content_hash", "does not match the list (" + ContentHashOf(list) + ")");
  }
  return list;
}

}  // namespace fe::snapshot
