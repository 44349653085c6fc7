// The btrfs backend: every volume is a subvolume, and cloning a subvolume is a writable snapshot,
// whose cost does not depend on what the volume holds. libbtrfsutil does the work.
//
// Snapshots cost a few milliseconds whatever the tree holds; reflinking costs per file. For trees
// smaller than `snapshot_min_entries` (counted with a walk that stops at that many entries) the
// clone is a reflinked plain directory instead, which is faster there (see README: crossover).
//
// A parent that is a plain directory rather than a subvolume root (imported data, say) is cloned file
// by file with reflink into a new subvolume, and the report's note says so. Either way the clone is
// atomic: a snapshot appears whole or not at all, and a reflinked clone is built under a temporary
// name and renamed into place. Removal deletes the subvolume and any nested ones, clearing read-only
// flags first; it never walks a subvolume with rm -rf. Quotas are never enabled by this backend
// (qgroups are known to slow snapshot deletion): usage comes from FIEMAP instead.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "storage/tree/directory_backend.h"
#include "storage/tree/tree_cloner.h"

namespace fe::storage::btrfs {

class BtrfsBackend final : public tree::DirectoryBackend {
 public:
  // Fails with Unsupported when `root` is not on btrfs. snapshot_min_entries = 0 always snapshots
  // subvolumes.
  static Result<std::unique_ptr<BtrfsBackend>> Open(const std::string& root, std::string reason,
                                                    size_t snapshot_min_entries);

  std::string_view Name() const override { return "btrfs"; }
  BackendCapabilities Capabilities() const override;
  Status Create(const std::string& volume) override;
  Result<CloneReport> Clone(const std::string& parent, const std::string& volume) override;
  Status Remove(const std::string& volume) override;

  // A read-only snapshot of `parent` (a template that can no longer change). Fails when `parent` is
  // not a subvolume.
  Result<CloneReport> CloneReadOnly(const std::string& parent, const std::string& volume);
  // Whether `volume` is a subvolume root (not a plain directory).
  Result<bool> IsSubvolume(const std::string& volume);

 private:
  BtrfsBackend(std::string root, UniqueFd root_fd, std::string reason, size_t snapshot_min_entries)
      : tree::DirectoryBackend(std::move(root), std::move(root_fd), std::move(reason)),
        snapshot_min_entries_(snapshot_min_entries) {}
  Result<CloneReport> Snapshot(int parent_fd, const std::string& volume, bool read_only);
  Result<CloneReport> ReflinkIntoSubvolume(const std::string& parent, const std::string& volume);
  Status DeleteSubvolume(const std::string& name);
  Status RemoveLeftover(const std::string& name) override { return DeleteSubvolume(name); }

  const size_t snapshot_min_entries_;
};

}  // namespace fe::storage::btrfs
