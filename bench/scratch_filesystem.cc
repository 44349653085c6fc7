#include "bench/scratch_filesystem.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

namespace fe::bench {
namespace {

using storage::loop::LoopFilesystem;
using storage::loop::LoopFilesystemType;

Status MakeDirectory(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0) return Status::FromErrno(errno, "mkdir", path);
  return Status::Ok();
}

void RemoveIfPresent(const std::string& path) {
  if (::rmdir(path.c_str()) != 0 && errno == ENOTDIR) ::unlink(path.c_str());
}

}  // namespace

Result<std::unique_ptr<WorkDirectory>> WorkDirectory::Create(const std::string& parent) {
  std::string pattern = parent + "/forkbench-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) return Status::FromErrno(errno, "mkdtemp", pattern);
  return std::unique_ptr<WorkDirectory>(new WorkDirectory(buffer.data()));
}

WorkDirectory::~WorkDirectory() {
  if (::rmdir(path_.c_str()) != 0) {
    std::fprintf(stderr, "forkbench: could not remove %s: %s (left behind)\n", path_.c_str(), std::strerror(errno));
  }
}

Result<ScratchKind> ParseScratchKind(const std::string& name) {
  if (name == "xfs") return ScratchKind::kXfs;
  if (name == "btrfs") return ScratchKind::kBtrfs;
  if (name == "ext4") return ScratchKind::kExt4;
  if (name == "ext4-loop") return ScratchKind::kExt4Loop;
  return Status::InvalidArgument("unknown filesystem '" + name + "' (expected xfs, btrfs, ext4 or ext4-loop)");
}

Result<std::vector<ScratchKind>> ParseScratchKinds(const std::vector<std::string>& names) {
  std::vector<ScratchKind> kinds;
  for (const std::string& name : names) {
    Result<ScratchKind> kind = ParseScratchKind(name);
    if (!kind.ok()) return kind.status();
    kinds.push_back(*kind);
  }
  return kinds;
}

Result<std::unique_ptr<ScratchFilesystem>> ScratchFilesystem::Open(ScratchKind kind, const std::string& work_dir) {
  std::unique_ptr<ScratchFilesystem> scratch(new ScratchFilesystem());
  std::optional<storage::loop::LoopFilesystemType> loop_type;
  if (kind == ScratchKind::kXfs) loop_type = storage::loop::LoopFilesystemType::kXfs;
  if (kind == ScratchKind::kBtrfs) loop_type = storage::loop::LoopFilesystemType::kBtrfs;
  if (kind == ScratchKind::kExt4Loop) loop_type = storage::loop::LoopFilesystemType::kExt4;
  if (kind == ScratchKind::kExt4) {
    // ext4 means "the root filesystem, as a user's data root would be"; only when the root
    // filesystem is something else does a loop-mounted ext4 stand in for it.
    Result<storage::tree::FilesystemProbe> probe = storage::tree::ProbeFilesystem(work_dir);
    FE_RETURN_IF_ERROR(probe.status());
    if (probe->filesystem != "ext4") loop_type = storage::loop::LoopFilesystemType::kExt4;
  }

  if (loop_type) {
    std::string name(storage::loop::LoopFilesystemTypeName(*loop_type));
    storage::loop::LoopFilesystemOptions options;
    options.type = *loop_type;
    options.image_path = work_dir + "/" + name + ".img";
    options.size_bytes = kImageBytes;
    options.mount_point = work_dir + "/" + name;
    Result<storage::loop::LoopFilesystem> loop = storage::loop::LoopFilesystem::Open(options);
    if (!loop.ok()) {
      RemoveIfPresent(options.mount_point);  // whatever a failed Open left unmounted
      ::unlink(options.image_path.c_str());
      return loop.status();
    }
    scratch->loop_.emplace(std::move(*loop));
    scratch->root_ = scratch->loop_->mount_point() + "/bench";
    scratch->description_ = fmt::format("loop-mounted {} on {} ({} GiB sparse image in {})", name,
                                        scratch->loop_->device(), kImageBytes >> 30, work_dir);
  } else {
    scratch->root_ = work_dir + "/data";
    scratch->description_ = kind == ScratchKind::kExt4 ? "plain directory " + scratch->root_ + " on the root filesystem"
                                                       : "plain directory " + scratch->root_;
  }
  // From here on the destructor cleans up, so early returns are safe.
  FE_RETURN_IF_ERROR(MakeDirectory(scratch->root_));
  Result<storage::tree::FilesystemProbe> probe = storage::tree::ProbeFilesystem(scratch->root_);
  FE_RETURN_IF_ERROR(probe.status());
  scratch->probe_ = *probe;
  scratch->label_ = probe->filesystem;
  // Tells the two ext4 variants apart in the tables.
  if (loop_type == storage::loop::LoopFilesystemType::kExt4) scratch->label_ += "-loop";
  scratch->description_ += fmt::format("; reflink: {} ({})", probe->reflink ? "yes" : "no", probe->reason);
  return scratch;
}

Status ScratchFilesystem::Close() {
  if (closed_) return Status::Ok();
  closed_ = true;
  Status status;
  // A loop filesystem goes away with its image; only a plain directory needs emptying. root_ is a
  // directory we created, so this never reaches beyond what the benchmark wrote.
  if (!loop_) {
    std::error_code error;
    std::filesystem::remove_all(root_, error);
    if (error) status = Status::FromErrno(error.value(), "removing", root_);
  }
  if (loop_) {
    std::string mount_point = loop_->mount_point();
    std::string image = loop_->image_path();
    Status closed = loop_->Close();
    loop_.reset();
    if (closed.ok()) {
      RemoveIfPresent(mount_point);
      ::unlink(image.c_str());
    } else if (status.ok()) {
      status = closed;
    }
  }
  return status;
}

ScratchFilesystem::~ScratchFilesystem() {
  Status status = Close();
  if (!status.ok()) std::fprintf(stderr, "forkbench: cleanup: %s\n", status.ToString().c_str());
}

}  // namespace fe::bench
