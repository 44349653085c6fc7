// Templates' files: what a replication to another node reads (issue #22).
//
// A template never runs (Start and Restore refuse it), so its volume keeps the bytes it had when it
// was made. Its file list, with a SHA-256 per data chunk, is made once then (a full read of its
// data: the price of a template, paid at its import rather than at each replication) and kept as
// <instance dir>/files.json; a replication sends that list and then the chunks it names, which the
// target checks against it.
#include <fcntl.h>

#include <spdlog/spdlog.h>

#include "base/atomic_file.h"
#include "base/fs_util.h"
#include "engine/engine.h"

namespace fe::engine {
namespace {

constexpr size_t kMaxFileListBytes = 64u << 20;

std::string FileListPath(const std::string& instance_dir) { return instance_dir + "/files.json"; }

}  // namespace

Status Engine::RecordTemplateFiles(Instance& instance, const CreateRequest& request) const {
  FE_ASSIGN_OR_RETURN(ConfinedDir volume, ConfinedDir::Open(GuestDir(instance)));
  FE_ASSIGN_OR_RETURN(snapshot::GuestFileList list, snapshot::ListGuestFiles(volume));
  FE_RETURN_IF_ERROR(
      ReplaceFileDurably(FileListPath(InstanceDir(instance.id)), snapshot::GuestFileListToJson(list).dump(), 0600));
  TemplateMark mark;
  mark.content_hash = request.replica ? request.replica->content_hash : list.content_hash;
  mark.replica_of = request.replica ? request.replica->template_id : std::string();
  instance.template_mark = std::move(mark);
  spdlog::info("template {}: {} files, {} data bytes in {} chunks, content {}", instance.id, list.files.size(),
               list.DataBytes(), list.ChunkCount(), instance.template_mark->content_hash);
  return Status::Ok();
}

Result<Engine::TemplateFileList> Engine::TemplateFiles(const std::string& id_or_name) const {
  FE_ASSIGN_OR_RETURN(Instance instance, Get(id_or_name));
  if (!instance.template_mark) {
    return Status::FailedPrecondition("instance '" + instance.name +
                                      "' is no template: only a template's files are read for a replication "
                                      "(create it with \"template\": true; its files then never change)");
  }
  std::shared_ptr<const snapshot::GuestFileList> list;
  {
    std::lock_guard lock(template_files_mutex_);
    auto kept = template_files_.find(instance.id);
    if (kept != template_files_.end()) list = kept->second;
  }
  if (!list) {
    const std::string path = FileListPath(InstanceDir(instance.id));
    FE_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path, kMaxFileListBytes));
    const nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
    FE_ASSIGN_OR_RETURN(snapshot::GuestFileList read, snapshot::GuestFileListFromJson(json, path));
    list = std::make_shared<const snapshot::GuestFileList>(std::move(read));
    std::lock_guard lock(template_files_mutex_);
    template_files_[instance.id] = list;
  }
  std::string dir = GuestDir(instance);
  return TemplateFileList{std::move(instance), std::move(dir), list};
}

Result<std::string> Engine::ReadTemplateFile(const std::string& id_or_name, const std::string& path, uint64_t offset,
                                             uint64_t length) const {
  FE_ASSIGN_OR_RETURN(TemplateFileList files, TemplateFiles(id_or_name));
  const snapshot::GuestFile* file = nullptr;
  for (const snapshot::GuestFile& listed : files.list->files) {
    if (listed.path == path && listed.type == snapshot::GuestFile::Type::kFile) file = &listed;
  }
  if (file == nullptr)
    return Status::InvalidArgument("path '" + path + "' is no file of template '" + id_or_name + "'");
  if (length == 0 || length > snapshot::kMaxChunkBytes || offset > file->size || length > file->size - offset) {
    return Status::InvalidArgument("range " + std::to_string(offset) + "+" + std::to_string(length) + " of '" + path +
                                   "' is empty, above " + std::to_string(snapshot::kMaxChunkBytes) +
                                   " bytes or past its size " + std::to_string(file->size));
  }
  FE_ASSIGN_OR_RETURN(ConfinedDir volume, ConfinedDir::Open(files.dir));
  FE_ASSIGN_OR_RETURN(UniqueFd fd, volume.OpenFile(path, O_RDONLY | O_NOFOLLOW));
  std::string data(length, '\0');
  FE_RETURN_IF_ERROR(ReadAllAt(fd.get(), data.data(), length, static_cast<off_t>(offset), volume.PathOf(path)));
  return data;
}

}  // namespace fe::engine
