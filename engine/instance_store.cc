#include "engine/instance_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/deferred_sync.h"
#include "base/fs_util.h"
#include "storage/tree/tree_cloner.h"

namespace fe::engine {
namespace {

constexpr size_t kMetadataLimit = size_t{1} << 20;
constexpr char kStagedName[] = ".instance.json.staged";

Status MakeDirectory(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return Status::Ok();
  return Status::FromErrno(errno, "create directory", path);
}

Status SyncFd(int fd, const std::string& path) {
  if (::fsync(fd) != 0) return Status::FromErrno(errno, "fsync", path);
  return Status::Ok();
}

}  // namespace

Result<InstanceStore> InstanceStore::Open(std::string root) {
  FE_RETURN_IF_ERROR(MakeDirectory(root));
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Status::FromErrno(errno, "open", root);
  return InstanceStore(std::move(root), UniqueFd(fd));
}

std::string InstanceStore::Dir(const std::string& id) const { return JoinPath(root_, id); }

std::string InstanceStore::MetadataPath(const std::string& id) const { return JoinPath(Dir(id), kMetadataName); }

Status InstanceStore::Write(const Instance& instance) {
  // Never written unless it reads back: what the API accepted survives a restart.
  FE_RETURN_IF_ERROR(ValidateInstance(instance).Annotate("instance " + instance.id));
  if (::mkdirat(root_fd_.get(), instance.id.c_str(), 0700) == 0) {
    // The new directory must survive a crash before anything depends on it.
    if (DeferredSync* deferred = DeferredSync::Current()) {
      deferred->Note(root_);
    } else {
      FE_RETURN_IF_ERROR(SyncFd(root_fd_.get(), root_));
    }
  } else if (errno != EEXIST) {
    return Status::FromErrno(errno, "create directory", Dir(instance.id));
  }
  std::string text = InstanceToJson(instance).dump(2) + "\n";
  return ReplaceFileAtomically(MetadataPath(instance.id), text, 0600);
}

Status InstanceStore::Stage(const Instance& instance) {
  FE_RETURN_IF_ERROR(ValidateInstance(instance).Annotate("instance " + instance.id));
  std::string path = JoinPath(Dir(instance.id), kStagedName);
  int dir = ::openat(root_fd_.get(), instance.id.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (dir < 0) return Status::FromErrno(errno, "open", Dir(instance.id));
  UniqueFd dir_fd(dir);
  UniqueFd file(::openat(dir, kStagedName, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (file.get() < 0) return Status::FromErrno(errno, "create", path);
  const std::string text = InstanceToJson(instance).dump(2) + "\n";
  for (size_t done = 0; done < text.size();) {
    ssize_t written = ::write(file.get(), text.data() + done, text.size() - done);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return Status::FromErrno(written < 0 ? errno : EIO, "write", path);
    done += static_cast<size_t>(written);
  }
  return Status::Ok();
}

Status InstanceStore::PublishStaged(const std::string& id) { return RenameStaged(id, /*sync_directory=*/false); }

Status InstanceStore::PublishStagedDurably(const std::string& id) { return RenameStaged(id, /*sync_directory=*/true); }

Status InstanceStore::RenameStaged(const std::string& id, bool sync_directory) {
  int dir = ::openat(root_fd_.get(), id.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (dir < 0) return Status::FromErrno(errno, "open", Dir(id));
  UniqueFd dir_fd(dir);
  if (::renameat(dir, kStagedName, dir, std::string(kMetadataName).c_str()) != 0) {
    return Status::FromErrno(errno, "rename " + JoinPath(Dir(id), kStagedName) + " to", MetadataPath(id));
  }
  return sync_directory ? SyncFd(dir, Dir(id)) : Status::Ok();
}

Status InstanceStore::SyncFilesystem() {
  if (::syncfs(root_fd_.get()) != 0) return Status::FromErrno(errno, "syncfs", root_);
  return Status::Ok();
}

Result<Instance> InstanceStore::Read(const std::string& id) const {
  std::string path = MetadataPath(id);
  Result<std::string> text = ReadSmallFile(path, kMetadataLimit);
  if (!text.ok()) return text.status();
  nlohmann::json json = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Status::InvalidArgument(path + ": not valid JSON");
  Result<Instance> instance = InstanceFromJson(json, path);
  if (!instance.ok()) return instance.status();
  if (instance->id != id) {
    return Status::InvalidArgument(path + ": field 'id': '" + instance->id + "' does not match its directory '" + id +
                                   "'");
  }
  return instance;
}

Status InstanceStore::Remove(const std::string& id) {
  if (!IsSingleComponent(id)) {
    return Status::InvalidArgument("instance id '" + id + "' is not a directory name");
  }
  int dir = ::openat(root_fd_.get(), id.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (dir < 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::FromErrno(errno, "open", Dir(id));
  }
  UniqueFd dir_fd(dir);
  if (::unlinkat(dir, std::string(kMetadataName).c_str(), 0) == 0) {
    FE_RETURN_IF_ERROR(SyncFd(dir, Dir(id)));
  } else if (errno != ENOENT) {
    return Status::FromErrno(errno, "remove", MetadataPath(id));
  }
  dir_fd.reset();
  FE_RETURN_IF_ERROR(RemoveTree(root_fd_.get(), id));
  return SyncFd(root_fd_.get(), root_);
}

Result<std::vector<std::string>> InstanceStore::ListIds() const {
  int dup = ::openat(root_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return Status::FromErrno(errno, "open", root_);
  UniqueFd dir(dup);
  std::vector<DirectoryEntry> entries;
  FE_RETURN_IF_ERROR(ReadDirectory(dir.get(), entries, root_));
  std::vector<std::string> ids;
  for (const DirectoryEntry& entry : entries) {
    if (entry.name.empty() || entry.name.front() == '.') continue;
    if (entry.type != DT_DIR && entry.type != DT_UNKNOWN) continue;
    ids.push_back(entry.name);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace fe::engine
