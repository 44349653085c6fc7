// The base of every backend whose volumes are directories directly under the data root (reflink,
// copy, btrfs, dm-thin): paths, listing, usage by walking with FIEMAP, and crash leftovers (hidden
// names a half-made or half-removed volume carries).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"
#include "storage/backend.h"

namespace fe::storage::tree {

// Volumes that are directories directly under the data root: the common part of the tree and btrfs
// backends (root, paths, listing, usage by walking with FIEMAP).
class DirectoryBackend : public Backend {
 public:
  DirectoryBackend(std::string root, UniqueFd root_fd, std::string reason)
      : root_(std::move(root)), root_fd_(std::move(root_fd)), reason_(std::move(reason)) {}

  const std::string& Root() const override { return root_; }
  const std::string& SelectionReason() const override { return reason_; }
  std::string Path(const std::string& volume) const override;
  // Create(), then the tree cloner copies the directory's contents in; removed again on failure.
  Result<CloneReport> Import(const std::string& source_dir, const std::string& volume) override;
  Result<VolumeUsage> Usage(const std::string& volume) override;
  Result<std::vector<std::string>> List() override;
  Result<std::vector<std::string>> RemoveLeftovers() override;

 protected:
  int root_fd() const { return root_fd_.get(); }
  // Renames `volume` to a hidden name so a crash mid-removal never leaves a half-removed volume
  // under its name; returns the hidden name.
  Result<std::string> RenameAway(const std::string& volume);
  Status NotFound(const std::string& volume) const;
  Status AlreadyExists(const std::string& volume) const;
  // Import with `create` making the empty volume; it gets the source directory (opened without
  // following a symlink), to size the volume for it, say.
  Result<CloneReport> ImportWith(const std::string& source_dir, const std::string& volume,
                                 const std::function<Status(int source_fd)>& create);
  // Removes one hidden leftover entry (a directory tree; btrfs: possibly a subvolume).
  virtual Status RemoveLeftover(const std::string& name);

 private:
  const std::string root_;
  const UniqueFd root_fd_;
  const std::string reason_;
};

// Opens the data root directory (created if missing) for a backend.
Result<UniqueFd> OpenDataRoot(const std::string& root);

// Walks the tree under `dir_fd`, summing sizes, allocated blocks and (with FIEMAP) shared extents.
Result<VolumeUsage> MeasureTree(int dir_fd, const std::string& display);

}  // namespace fe::storage::tree
