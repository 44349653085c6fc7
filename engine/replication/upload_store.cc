#include "engine/replication/upload_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "base/atomic_file.h"
#include "base/confined_dir.h"
#include "base/fs_util.h"
#include "base/json_fields.h"
#include "base/sha256.h"
#include "engine/instance.h"

namespace fe::engine::replication {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxDescriptionBytes = 64u << 20;

bool IsUploadId(std::string_view id) {
  if (id.size() != 18 || id.substr(0, 2) != "u-") return false;
  for (char c : id.substr(2)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string NewUploadId() { return "u-" + NewInstanceId().substr(2); }

Result<SourceTemplate> SourceFromJson(const JsonFields& fields) {
  SourceTemplate source;
  FE_RETURN_IF_ERROR(fields.RejectUnknown(
      {"id", "name", "hypervisor", "state", "vcpus", "dir", "content_hash", "original_id", "files"}));
  FE_RETURN_IF_ERROR(fields.String("id", source.id, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("name", source.name, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("hypervisor", source.hypervisor, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("state", source.state, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.Number("vcpus", source.vcpus, JsonFields::kRequired, 1, 4096));
  FE_RETURN_IF_ERROR(fields.String("dir", source.dir, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("content_hash", source.content_hash, JsonFields::kRequired));
  FE_RETURN_IF_ERROR(fields.String("original_id", source.original_id, JsonFields::kRequired));
  if (source.state != "Standby" && source.state != "Stopped") {
    return fields.Fail("state", "'" + source.state + "' is neither Standby nor Stopped");
  }
  if (source.dir.empty() || source.dir.front() != '/') return fields.Fail("dir", "not an absolute path");
  if (source.id.empty() || source.original_id.empty() || source.content_hash.empty()) {
    return fields.Fail("id", "the template's id, original id and content hash may not be empty");
  }
  return source;
}

}  // namespace

struct UploadStore::Upload {
  std::string id;
  SourceTemplate source;
  snapshot::GuestFileList files;
  std::map<std::pair<std::string, uint64_t>, snapshot::FileChunk> chunks;  // (path, offset) -> chunk
  std::set<std::pair<std::string, uint64_t>> received;
  Clock::WallPoint touched;
  std::mutex mutex;  // received, touched, and the `received` log

  // The list, and its chunks indexed by (path, offset).
  void SetFiles(snapshot::GuestFileList list) {
    files = std::move(list);
    for (const snapshot::GuestFile& file : files.files)
      for (const snapshot::FileChunk& chunk : file.chunks) chunks[{file.path, chunk.offset}] = chunk;
  }
};

Json DescribeTemplate(const SourceTemplate& source, const snapshot::GuestFileList& files) {
  return Json{{"id", source.id},
              {"name", source.name},
              {"hypervisor", source.hypervisor},
              {"state", source.state},
              {"vcpus", source.vcpus},
              {"dir", source.dir},
              {"content_hash", source.content_hash},
              {"original_id", source.original_id},
              {"files", snapshot::GuestFileListToJson(files)}};
}

Json UploadStatusToJson(const UploadStatus& status) {
  Json missing = Json::array();
  for (size_t i = 0; i < status.missing.size(); ++i) {
    missing.push_back(Json{
        {"path", status.missing_paths[i]}, {"offset", status.missing[i].offset}, {"length", status.missing[i].length}});
  }
  return Json{{"id", status.id},
              {"template", status.source.original_id},
              {"content_hash", status.source.content_hash},
              {"chunks", status.chunks},
              {"received_chunks", status.received_chunks},
              {"bytes", status.bytes},
              {"received_bytes", status.received_bytes},
              {"complete", status.complete()},
              {"missing", std::move(missing)}};
}

Result<std::unique_ptr<UploadStore>> UploadStore::Open(std::string root, const Clock& clock,
                                                       std::chrono::seconds stale_after) {
  FE_RETURN_IF_ERROR(MakeDirectories(root, 0700));
  std::unique_ptr<UploadStore> store(new UploadStore(std::move(root), clock, stale_after));
  UniqueFd dir(::open(store->root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return Status::FromErrno(errno, "open", store->root_);
  std::vector<DirectoryEntry> entries;
  FE_RETURN_IF_ERROR(ReadDirectory(dir.get(), entries, store->root_));
  for (const DirectoryEntry& entry : entries) {
    Status loaded = IsUploadId(entry.name) ? store->Load(entry.name) : Status::InvalidContent("not an upload");
    if (!loaded.ok()) {
      // A half-made upload (a crash in Begin) or a stranger: nothing a sender can resume.
      spdlog::warn("uploads: removing {}/{}: {}", store->root_, entry.name, loaded.ToString());
      (void)store->RemoveDir(entry.name);
    }
  }
  store->SweepStale();
  return store;
}

Status UploadStore::Load(const std::string& id) {
  const std::string dir = DirOf(id);
  FE_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(dir + "/upload.json", kMaxDescriptionBytes));
  const Json json = Json::parse(text, nullptr, false);
  if (!json.is_object() || !json.contains("files")) return Status::InvalidContent(dir + "/upload.json: not an upload");
  auto upload = std::make_shared<Upload>();
  upload->id = id;
  FE_ASSIGN_OR_RETURN(upload->source, SourceFromJson(JsonFields(json, dir + "/upload.json")));
  FE_ASSIGN_OR_RETURN(snapshot::GuestFileList listed,
                      snapshot::GuestFileListFromJson(json["files"], dir + "/upload.json: files"));
  upload->SetFiles(std::move(listed));
  FE_ASSIGN_OR_RETURN(ConfinedDir files, ConfinedDir::Open(dir + "/files"));
  // Every chunk the log names is checked against its bytes: the log is written before the data is
  // known durable, and a torn last line is just not a chunk.
  std::ifstream log(dir + "/received");
  std::string buffer;
  for (std::string line; std::getline(log, line);) {
    std::istringstream fields(line);
    uint64_t offset = 0;
    std::string path;
    if (!(fields >> offset) || fields.get() != ' ' || !std::getline(fields, path)) continue;
    auto chunk = upload->chunks.find({path, offset});
    if (chunk == upload->chunks.end()) continue;
    Result<UniqueFd> fd = files.OpenFile(path, O_RDONLY | O_NOFOLLOW);
    if (!fd.ok()) continue;
    buffer.resize(chunk->second.length);
    if (!ReadAllAt(fd->get(), buffer.data(), buffer.size(), static_cast<off_t>(offset), path).ok()) continue;
    if (Sha256Hex(buffer) == chunk->second.sha256) upload->received.insert(chunk->first);
  }
  struct stat st {};
  const std::string touched = ::stat((dir + "/received").c_str(), &st) == 0 ? dir + "/received" : dir + "/upload.json";
  if (::stat(touched.c_str(), &st) != 0) return Status::FromErrno(errno, "stat", touched);
  upload->touched = Clock::WallPoint(std::chrono::seconds(st.st_mtim.tv_sec));
  spdlog::info("uploads: {} of template {}: {} of {} chunks kept", id, upload->source.original_id,
               upload->received.size(), upload->chunks.size());
  std::lock_guard lock(mutex_);
  uploads_[id] = std::move(upload);
  return Status::Ok();
}

void UploadStore::SweepStale() {
  std::vector<std::string> stale;
  {
    std::lock_guard lock(mutex_);
    const Clock::WallPoint now = clock_.WallNow();
    for (const auto& [id, upload] : uploads_) {
      std::lock_guard upload_lock(upload->mutex);
      if (now - upload->touched > stale_after_) stale.push_back(id);
    }
  }
  for (const std::string& id : stale) {
    spdlog::info("uploads: removing {}: untouched for more than {} s", id, stale_after_.count());
    (void)Remove(id);
  }
}

Result<UploadStatus> UploadStore::Begin(const Json& description) {
  SweepStale();
  if (!description.is_object()) return Status::InvalidArgument("upload request: not a JSON object");
  JsonFields fields(description, "upload request");
  FE_ASSIGN_OR_RETURN(SourceTemplate source, SourceFromJson(fields));
  FE_ASSIGN_OR_RETURN(const Json* files_json, fields.Object("files", JsonFields::kRequired));
  FE_ASSIGN_OR_RETURN(snapshot::GuestFileList files,
                      snapshot::GuestFileListFromJson(*files_json, "upload request: field 'files'"));
  {
    std::lock_guard lock(mutex_);
    if (uploads_.size() >= kMaxUploads) {
      return Status::Busy(std::to_string(kMaxUploads) + " uploads are under way; finish or delete one first");
    }
  }
  struct statvfs fs {};
  if (::statvfs(root_.c_str(), &fs) != 0) return Status::FromErrno(errno, "statvfs", root_);
  const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  if (free_bytes < files.DataBytes()) {
    return Status::NoSpace("upload of template '" + source.name + "': " + std::to_string(files.DataBytes()) +
                           " bytes of data, " + std::to_string(free_bytes) + " free under " + root_);
  }

  auto upload = std::make_shared<Upload>();
  upload->id = NewUploadId();
  upload->source = source;
  upload->SetFiles(files);
  upload->touched = clock_.WallNow();
  const std::string dir = DirOf(upload->id);
  auto made = [&]() -> Status {
    FE_RETURN_IF_ERROR(MakeDirectories(dir + "/files", 0700));
    FE_ASSIGN_OR_RETURN(ConfinedDir tree, ConfinedDir::Open(dir + "/files"));
    for (const snapshot::GuestFile& file : files.files) {
      switch (file.type) {
        case snapshot::GuestFile::Type::kDirectory: FE_RETURN_IF_ERROR(tree.MakeDirectory(file.path, 0700)); break;
        case snapshot::GuestFile::Type::kSymlink: {
          FE_ASSIGN_OR_RETURN(auto parent, tree.OpenSubdirectory(file.path.find('/') == std::string::npos
                                                                     ? "."
                                                                     : file.path.substr(0, file.path.rfind('/'))));
          const std::string name = file.path.substr(file.path.rfind('/') + 1);
          if (::symlinkat(file.target.c_str(), parent.fd(), name.c_str()) != 0) {
            return Status::FromErrno(errno, "symlink", tree.PathOf(file.path));
          }
          break;
        }
        case snapshot::GuestFile::Type::kFile: {
          FE_ASSIGN_OR_RETURN(UniqueFd fd, tree.OpenFile(file.path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
          if (::ftruncate(fd.get(), static_cast<off_t>(file.size)) != 0) {
            return Status::FromErrno(errno, "size", tree.PathOf(file.path));
          }
          break;
        }
      }
    }
    // Modes last: a directory made read-only first would refuse its own entries.
    for (auto file = files.files.rbegin(); file != files.files.rend(); ++file) {
      if (file->type == snapshot::GuestFile::Type::kSymlink) continue;
      if (::fchmodat(tree.fd(), file->path.c_str(), file->mode, AT_SYMLINK_NOFOLLOW) != 0 && errno != EOPNOTSUPP) {
        return Status::FromErrno(errno, "chmod", tree.PathOf(file->path));
      }
    }
    // Written last: an upload without it is a crash's leftover, removed at Open.
    return ReplaceFileDurably(dir + "/upload.json", description.dump(), 0600);
  }();
  if (!made.ok()) {
    (void)RemoveDir(upload->id);
    return made.Annotate("upload of template '" + source.name + "'");
  }
  spdlog::info("uploads: {} of template {} ('{}'): {} chunks, {} bytes", upload->id, source.original_id, source.name,
               upload->chunks.size(), files.DataBytes());
  {
    std::lock_guard lock(mutex_);
    uploads_[upload->id] = upload;
  }
  return Get(upload->id);
}

Result<std::shared_ptr<UploadStore::Upload>> UploadStore::Find(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto found = uploads_.find(id);
  if (found == uploads_.end()) return Status::NotFound("upload '" + id + "' not found");
  return found->second;
}

Result<UploadStatus> UploadStore::Get(const std::string& id) const {
  FE_ASSIGN_OR_RETURN(std::shared_ptr<Upload> upload, Find(id));
  std::lock_guard lock(upload->mutex);
  UploadStatus status;
  status.id = id;
  status.source = upload->source;
  status.chunks = upload->chunks.size();
  status.received_chunks = upload->received.size();
  for (const auto& [key, chunk] : upload->chunks) {
    status.bytes += chunk.length;
    if (upload->received.count(key) != 0) {
      status.received_bytes += chunk.length;
    } else {
      status.missing.push_back(chunk);
      status.missing_paths.push_back(key.first);
    }
  }
  return status;
}

Result<UploadStatus> UploadStore::PutChunk(const std::string& id, const std::string& path, uint64_t offset,
                                           std::string_view data) {
  FE_ASSIGN_OR_RETURN(std::shared_ptr<Upload> upload, Find(id));
  auto chunk = upload->chunks.find({path, offset});
  if (chunk == upload->chunks.end()) {
    return Status::InvalidArgument("upload '" + id + "' has no chunk of '" + path + "' at offset " +
                                   std::to_string(offset));
  }
  if (data.size() != chunk->second.length || Sha256Hex(data) != chunk->second.sha256) {
    return Status::InvalidContent("upload '" + id + "': the " + std::to_string(data.size()) + " bytes sent for '" +
                                  path + "' at offset " + std::to_string(offset) + " are not the chunk listed (" +
                                  std::to_string(chunk->second.length) + " bytes, sha256 " + chunk->second.sha256 +
                                  ")");
  }
  const std::string dir = DirOf(id);
  FE_ASSIGN_OR_RETURN(ConfinedDir tree, ConfinedDir::Open(dir + "/files"));
  FE_ASSIGN_OR_RETURN(UniqueFd fd, tree.OpenFile(path, O_WRONLY | O_NOFOLLOW));
  FE_RETURN_IF_ERROR(WriteAllAt(fd.get(), data.data(), data.size(), static_cast<off_t>(offset), tree.PathOf(path)));
  {
    std::lock_guard lock(upload->mutex);
    if (upload->received.insert(chunk->first).second) {
      std::ofstream log(dir + "/received", std::ios::app);
      log << offset << ' ' << path << '\n';
      if (!log) return Status::Io("upload '" + id + "': cannot append to " + dir + "/received");
    }
    upload->touched = clock_.WallNow();
  }
  return Get(id);
}

Result<StagedTemplate> UploadStore::Staged(const std::string& id) const {
  FE_ASSIGN_OR_RETURN(UploadStatus status, Get(id));
  if (!status.complete()) {
    return Status::FailedPrecondition("upload '" + id + "' misses " + std::to_string(status.missing.size()) + " of " +
                                      std::to_string(status.chunks) + " chunks");
  }
  FE_ASSIGN_OR_RETURN(std::shared_ptr<Upload> upload, Find(id));
  const std::string files_dir = DirOf(id) + "/files";
  FE_ASSIGN_OR_RETURN(ConfinedDir tree, ConfinedDir::Open(files_dir));
  for (const snapshot::GuestFile& file : upload->files.files) {
    if (file.type != snapshot::GuestFile::Type::kFile) continue;
    FE_ASSIGN_OR_RETURN(UniqueFd fd, tree.OpenFile(file.path, O_RDONLY | O_NOFOLLOW));
    if (::fdatasync(fd.get()) != 0) return Status::FromErrno(errno, "fdatasync", tree.PathOf(file.path));
  }
  return StagedTemplate{files_dir, upload->source};
}

Status UploadStore::Remove(const std::string& id) {
  if (!IsUploadId(id)) return Status::Ok();
  {
    std::lock_guard lock(mutex_);
    uploads_.erase(id);
  }
  return RemoveDir(id);
}

Status UploadStore::RemoveDir(const std::string& id) const {
  UniqueFd root(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Status::FromErrno(errno, "open", root_);
  return RemoveTree(root.get(), id);
}

}  // namespace fe::engine::replication
