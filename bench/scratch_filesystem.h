// Where the benchmarks write: a loop-mounted XFS or btrfs (or ext4, if the root filesystem is not
// ext4), a plain directory on the root filesystem for ext4, or the current directory when loop
// mounts are impossible. Everything created is removed again, also when a run fails or is
// interrupted by a signal (see interrupt.h).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "storage/loop/loop_filesystem.h"
#include "storage/tree/reflink_probe.h"

namespace fe::bench {

// A directory made with mkdtemp and removed (rmdir, so never anything still mounted below it) when
// destroyed.
class WorkDirectory {
 public:
  static Result<std::unique_ptr<WorkDirectory>> Create(const std::string& parent);
  ~WorkDirectory();
  const std::string& path() const { return path_; }

 private:
  explicit WorkDirectory(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// kExt4 is a directory on the root filesystem (where a user's data root would be) when that is
// ext4; kExt4Loop is a fresh loop-mounted ext4, isolated from whatever else the machine does.
enum class ScratchKind { kXfs, kBtrfs, kExt4, kExt4Loop, kCurrentDirectory };

Result<ScratchKind> ParseScratchKind(const std::string& name);
// Every name parsed, in order; the first unknown one is the error.
Result<std::vector<ScratchKind>> ParseScratchKinds(const std::vector<std::string>& names);

class ScratchFilesystem {
 public:
  // Loop images are sized for the datasets plus one full copy: sparse, so only real data costs.
  static constexpr uint64_t kImageBytes = 8ULL << 30;

  // Creates the scratch filesystem inside `work_dir` and probes whether FICLONE works there.
  static Result<std::unique_ptr<ScratchFilesystem>> Open(ScratchKind kind, const std::string& work_dir);
  ~ScratchFilesystem();

  // Removes what the benchmark wrote and unmounts; the destructor does the same, ignoring errors.
  Status Close();

  const std::string& label() const { return label_; }  // "xfs", "btrfs", "ext4", ...
  const std::string& root() const { return root_; }    // a directory the benchmark owns
  const std::string& description() const { return description_; }
  const storage::tree::FilesystemProbe& probe() const { return probe_; }

 private:
  ScratchFilesystem() = default;
  std::optional<storage::loop::LoopFilesystem> loop_;
  std::string label_;
  std::string root_;
  std::string description_;
  storage::tree::FilesystemProbe probe_;
  bool closed_ = false;
};

}  // namespace fe::bench
