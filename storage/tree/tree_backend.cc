#include "storage/tree/tree_backend.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <utility>

#include "base/fs_util.h"

namespace fe::storage::tree {
namespace {

class TreeBackend final : public DirectoryBackend {
 public:
  TreeBackend(std::string root, UniqueFd root_fd, DataMode mode, std::string reason, bool filesystem_reflinks)
      : DirectoryBackend(std::move(root), std::move(root_fd), std::move(reason)),
        mode_(mode),
        shares_data_(mode == DataMode::kReflink || filesystem_reflinks) {}

  std::string_view Name() const override { return mode_ == DataMode::kReflink ? "reflink" : "copy"; }
  BackendCapabilities Capabilities() const override {
    return BackendCapabilities{.shares_data = shares_data_, .constant_time_clone = false, .quiesce_origin = false};
  }

  Status Create(const std::string& volume) override {
    FE_RETURN_IF_ERROR(ValidateVolumeName(volume));
    if (::mkdirat(root_fd(), volume.c_str(), 0755) != 0) {
      if (errno == EEXIST) return AlreadyExists(volume);
      return Status::FromErrno(errno, "create volume", Path(volume));
    }
    return Status::Ok();
  }

  Result<CloneReport> Clone(const std::string& parent, const std::string& volume) override {
    FE_RETURN_IF_ERROR(ValidateVolumeName(parent));
    FE_RETURN_IF_ERROR(ValidateVolumeName(volume));
    CloneOptions options;
    options.data_mode = mode_;
    return CloneTree(root_fd(), parent, root_fd(), volume, options);
  }

  Status Remove(const std::string& volume) override {
    Result<std::string> doomed = RenameAway(volume);
    if (!doomed.ok()) return doomed.status();
    return RemoveTree(root_fd(), *doomed);
  }

 private:
  const DataMode mode_;
  const bool shares_data_;
};

}  // namespace

Result<std::unique_ptr<Backend>> OpenTreeBackend(const std::string& root, DataMode mode, std::string reason,
                                                 bool filesystem_reflinks) {
  Result<UniqueFd> fd = OpenDataRoot(root);
  if (!fd.ok()) return fd.status();
  return std::unique_ptr<Backend>(new TreeBackend(root, std::move(*fd), mode, std::move(reason), filesystem_reflinks));
}

}  // namespace fe::storage::tree
