#include "storage/tree/tree_cloner.h"

#include <algorithm>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "storage/tree/batch_io.h"
#include "base/deferred_sync.h"
#include "base/fs_util.h"
#include "base/log.h"
#include "storage/tree/metadata_copy.h"
#include "storage/tree/sparse_copy.h"
#include "storage/tree/worker_pool.h"

namespace fe::storage::tree {
namespace {

using Clock = std::chrono::steady_clock;

constexpr unsigned kStatxMask = STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_UID | STATX_GID | STATX_ATIME |
                                STATX_MTIME | STATX_INO | STATX_SIZE | STATX_BLOCKS;
constexpr int kStatxFlags = AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT;
constexpr size_t kFilesPerBatch = 64;
// A file with this much allocated data gets a task of its own so that two large FICLONEs (a disk
// image and a memory file) run on both cores instead of one after the other.
constexpr uint64_t kLargeFileBytes = 8ull << 20;
constexpr unsigned kQueueDepth = 256;

BatchIo& ThreadBatchIo(IoEngine engine) {
  thread_local std::unique_ptr<BatchIo> syscalls;
  thread_local std::unique_ptr<BatchIo> uring;
  thread_local bool uring_tried = false;
  if (engine == IoEngine::kUring) {
    if (!uring_tried) {
      uring = MakeUringBatchIo(kQueueDepth);
      uring_tried = true;
    }
    if (uring) return *uring;
  }
  if (!syscalls) syscalls = MakeSyscallBatchIo();
  return *syscalls;
}

// Measured by `forkbench --compare` (README): per-call syscalls beat io_uring batches here, because
// openat with O_CREAT and statx are punted to io-wq threads that compete for the same two cores.
IoEngine ResolveEngine(IoEngine engine) { return engine == IoEngine::kDefault ? IoEngine::kSyscalls : engine; }

bool FicloneRefused(int err) { return err == EOPNOTSUPP || err == EXDEV || err == EINVAL; }

open_how HowFor(uint64_t flags, mode_t mode) {
  open_how how{};
  how.flags = flags | O_CLOEXEC | O_NOFOLLOW;
  how.mode = mode;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return how;
}

struct InodeKey {
  uint64_t dev;
  uint64_t ino;
  bool operator==(const InodeKey&) const = default;
};
struct InodeKeyHash {
  size_t operator()(const InodeKey& key) const { return key.ino * 0x9e3779b97f4a7c15ull ^ key.dev; }
};

// The first name of a multiply-linked inode; later names become hard links to it.
struct LinkOrigin {
  std::string target_path;  // relative to the target root
  std::mutex mutex;
  std::condition_variable ready_changed;
  bool ready = false;   // guarded by mutex
  bool cloned = false;  // guarded by mutex
};

struct Entry {
  std::string name;
  struct statx stat;
  int stat_result = 0;
  int source_fd = -1;
  int target_fd = -1;
  open_how create_how;
  std::shared_ptr<LinkOrigin> origin;  // set for every name of a multiply-linked inode
  bool link_to_origin = false;         // this name becomes a hard link to origin
};

// A directory being cloned. Its metadata is applied when the last of its file batches finishes,
// after which nothing inside it changes (subdirectories change only themselves).
struct DirectoryNode {
  std::string path;  // relative to both roots; "" for the root
  struct statx stat;
  UniqueFd source;
  UniqueFd target;
  std::vector<Entry> entries;
  std::atomic<int> pending{1};  // the scan plus each file batch
};

class TreeClone {
 public:
  TreeClone(const CloneOptions& options, int source_root, int target_root, std::string source_display,
            std::string target_display)
      : options_(options),
        engine_(ResolveEngine(options.io_engine)),
        source_root_(source_root),
        target_root_(target_root),
        source_display_(std::move(source_display)),
        target_display_(std::move(target_display)),
        pool_(WorkerPool::Shared()) {}

  // Clones everything; returns the first error.
  Status Run(const struct statx& root_stat) {
    CloneDirectory("", root_stat);
    pool_.Wait(group_);
    std::lock_guard lock(mutex_);
    return error_;
  }

  void FillReport(CloneReport& report) {
    report.files = files_;
    report.directories = directories_;
    report.symlinks = symlinks_;
    report.hardlinks = hardlinks_;
    report.logical_bytes = logical_bytes_;
    report.reflinked_bytes = reflinked_bytes_;
    report.copied_bytes = copied_bytes_;
    report.fallback_files = fallback_files_;
    std::lock_guard lock(mutex_);
    report.skipped = std::move(skipped_);
    report.io_engine = std::string(ThreadBatchIo(engine_).Name());
    bool reflinked =
        report.reflinked_bytes > 0 || (options_.data_mode == DataMode::kReflink && report.fallback_files == 0);
    bool copied = report.fallback_files > 0 || options_.data_mode == DataMode::kCopy;
    report.mechanism = reflinked && copied ? "reflink+copy" : (reflinked ? "reflink" : "copy");
  }

 private:
  std::string SourcePath(std::string_view path) const { return JoinPath(source_display_, path); }
  std::string TargetPath(std::string_view path) const { return JoinPath(target_display_, path); }

  void Fail(Status status) {
    std::lock_guard lock(mutex_);
    if (error_.ok()) error_ = std::move(status);
    failed_.store(true, std::memory_order_release);
  }
  bool Failed() const { return failed_.load(std::memory_order_acquire); }

  void Skip(std::string path, std::string reason) {
    std::lock_guard lock(mutex_);
    skipped_.push_back(SkippedEntry{std::move(path), std::move(reason)});
  }

  void CloneDirectory(const std::string& path, const struct statx& stat);
  Status ScanDirectory(DirectoryNode& node);
  Status CreateSubdirectories(DirectoryNode& node, const std::vector<size_t>& indexes);
  Status CreateSymlinks(DirectoryNode& node, const std::vector<size_t>& indexes);
  void ScheduleFiles(const std::shared_ptr<DirectoryNode>& node, std::vector<size_t> files);
  Status CloneFiles(DirectoryNode& node, const std::vector<size_t>& indexes);
  Status CloneFileData(Entry& entry, const std::string& path);
  Status LinkToOrigins(DirectoryNode& node, const std::vector<size_t>& indexes);
  void ClaimOrigin(DirectoryNode& node, Entry& entry);
  void FinishPending(DirectoryNode& node);

  const CloneOptions options_;
  const IoEngine engine_;
  const int source_root_;
  const int target_root_;
  const std::string source_display_;
  const std::string target_display_;
  WorkerPool& pool_;
  TaskGroup group_;

  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> files_{0}, directories_{0}, symlinks_{0}, hardlinks_{0};
  std::atomic<uint64_t> logical_bytes_{0}, reflinked_bytes_{0}, copied_bytes_{0}, fallback_files_{0};

  std::mutex mutex_;
  Status error_;                                                                     // guarded by mutex_
  std::vector<SkippedEntry> skipped_;                                                // guarded by mutex_
  std::unordered_map<InodeKey, std::shared_ptr<LinkOrigin>, InodeKeyHash> origins_;  // mutex_
};

void TreeClone::CloneDirectory(const std::string& path, const struct statx& stat) {
  if (Failed()) return;
  auto node = std::make_shared<DirectoryNode>();
  node->path = path;
  node->stat = stat;
  directories_.fetch_add(1, std::memory_order_relaxed);
  // Subdirectories are reopened from the roots (not kept open by their parent), so the number of
  // open descriptors stays bounded by the number of running tasks, whatever the tree's width.
  const std::string here = path.empty() ? "." : path;
  Result<UniqueFd> source = OpenBeneath(source_root_, here, O_RDONLY | O_DIRECTORY, 0, SourcePath(path));
  if (!source.ok()) return Fail(source.status());
  Result<UniqueFd> target = OpenBeneath(target_root_, here, O_RDONLY | O_DIRECTORY, 0, TargetPath(path));
  if (!target.ok()) return Fail(target.status());
  node->source = std::move(*source);
  node->target = std::move(*target);

  Status scanned = ScanDirectory(*node);
  if (!scanned.ok()) Fail(std::move(scanned));

  std::vector<size_t> subdirectories, symlinks, files;
  for (size_t i = 0; i < node->entries.size() && !Failed(); ++i) {
    Entry& entry = node->entries[i];
    std::string entry_path = JoinPath(path, entry.name);
    switch (entry.stat.stx_mode & S_IFMT) {
      case S_IFDIR: subdirectories.push_back(i); break;
      case S_IFLNK: symlinks.push_back(i); break;
      case S_IFREG: files.push_back(i); break;
      case S_IFSOCK: Skip(entry_path, "socket: a runtime endpoint, never cloned"); break;
      case S_IFIFO: Skip(entry_path, "fifo: a runtime endpoint, never cloned"); break;
      case S_IFCHR: Skip(entry_path, "character device: device nodes are not cloned"); break;
      case S_IFBLK: Skip(entry_path, "block device: device nodes are not cloned"); break;
      default: Skip(entry_path, "unknown file type"); break;
    }
  }
  if (!Failed()) {
    Status status = CreateSubdirectories(*node, subdirectories);
    if (status.ok()) status = CreateSymlinks(*node, symlinks);
    if (!status.ok()) Fail(std::move(status));
  }
  if (!Failed()) ScheduleFiles(node, std::move(files));
  FinishPending(*node);
}

Status TreeClone::ScanDirectory(DirectoryNode& node) {
  std::vector<DirectoryEntry> names;
  FE_RETURN_IF_ERROR(ReadDirectory(node.source.get(), names, SourcePath(node.path)));
  node.entries.resize(names.size());
  BatchIo& io = ThreadBatchIo(engine_);
  for (size_t i = 0; i < names.size(); ++i) {
    Entry& entry = node.entries[i];
    entry.name = std::move(names[i].name);
    io.Statx(node.source.get(), entry.name.c_str(), kStatxFlags, kStatxMask, &entry.stat, &entry.stat_result);
  }
  io.Flush();
  for (Entry& entry : node.entries) {
    if (entry.stat_result < 0) {
      return Status::FromErrno(-entry.stat_result, "stat", SourcePath(JoinPath(node.path, entry.name)));
    }
  }
  return Status::Ok();
}

Status TreeClone::CreateSubdirectories(DirectoryNode& node, const std::vector<size_t>& indexes) {
  if (indexes.empty()) return Status::Ok();
  BatchIo& io = ThreadBatchIo(engine_);
  std::vector<int> results(indexes.size());
  for (size_t i = 0; i < indexes.size(); ++i) {
    io.Mkdirat(node.target.get(), node.entries[indexes[i]].name.c_str(), kNewDirectoryMode, &results[i]);
  }
  io.Flush();
  for (size_t i = 0; i < indexes.size(); ++i) {
    const Entry& entry = node.entries[indexes[i]];
    std::string path = JoinPath(node.path, entry.name);
    if (results[i] < 0) return Status::FromErrno(-results[i], "create directory", TargetPath(path));
    pool_.Submit(group_, [this, path, stat = entry.stat] { CloneDirectory(path, stat); });
  }
  return Status::Ok();
}

Status TreeClone::CreateSymlinks(DirectoryNode& node, const std::vector<size_t>& indexes) {
  if (indexes.empty()) return Status::Ok();
  const CreationDefaults& defaults = CreationDefaults::Current();
  BatchIo& io = ThreadBatchIo(engine_);
  std::vector<std::string> targets(indexes.size());
  std::vector<int> results(indexes.size());
  for (size_t i = 0; i < indexes.size(); ++i) {
    const Entry& entry = node.entries[indexes[i]];
    // The link's text is copied verbatim; it is never resolved.
    targets[i].resize(entry.stat.stx_size + 1 > 1 ? entry.stat.stx_size + 1 : 4096);
    ssize_t n = ::readlinkat(node.source.get(), entry.name.c_str(), targets[i].data(), targets[i].size());
    if (n < 0) return Status::FromErrno(errno, "read symlink", SourcePath(JoinPath(node.path, entry.name)));
    targets[i].resize(static_cast<size_t>(n));
    io.Symlinkat(targets[i].c_str(), node.target.get(), entry.name.c_str(), &results[i]);
  }
  io.Flush();
  for (size_t i = 0; i < indexes.size(); ++i) {
    const Entry& entry = node.entries[indexes[i]];
    std::string path = TargetPath(JoinPath(node.path, entry.name));
    if (results[i] < 0) return Status::FromErrno(-results[i], "create symlink", path);
    if ((entry.stat.stx_uid != defaults.uid || entry.stat.stx_gid != defaults.gid) &&
        ::fchownat(node.target.get(), entry.name.c_str(), entry.stat.stx_uid, entry.stat.stx_gid,
                   AT_SYMLINK_NOFOLLOW) != 0 &&
        (defaults.privileged || errno != EPERM)) {
      return Status::FromErrno(errno, "chown symlink", path);
    }
    const struct timespec times[2] = {{entry.stat.stx_atime.tv_sec, entry.stat.stx_atime.tv_nsec},
                                      {entry.stat.stx_mtime.tv_sec, entry.stat.stx_mtime.tv_nsec}};
    if (::utimensat(node.target.get(), entry.name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
      return Status::FromErrno(errno, "set times of symlink", path);
    }
    symlinks_.fetch_add(1, std::memory_order_relaxed);
  }
  return Status::Ok();
}

void TreeClone::ScheduleFiles(const std::shared_ptr<DirectoryNode>& node, std::vector<size_t> files) {
  std::vector<std::vector<size_t>> batches;
  std::vector<size_t> small;
  for (size_t index : files) {
    const struct statx& stat = node->entries[index].stat;
    if (stat.stx_blocks * 512 >= kLargeFileBytes) {
      batches.push_back({index});
    } else {
      small.push_back(index);
      if (small.size() == kFilesPerBatch) batches.push_back(std::move(small)), small.clear();
    }
  }
  if (!small.empty()) batches.push_back(std::move(small));
  // All but the first batch go to the pool; the first runs here, on a thread that is already warm.
  for (size_t i = 1; i < batches.size(); ++i) {
    node->pending.fetch_add(1, std::memory_order_relaxed);
    pool_.Submit(group_, [this, node, batch = std::move(batches[i])] {
      if (!Failed()) {
        Status status = CloneFiles(*node, batch);
        if (!status.ok()) Fail(std::move(status));
      }
      FinishPending(*node);
    });
  }
  if (!batches.empty()) {
    Status status = CloneFiles(*node, batches[0]);
    if (!status.ok()) Fail(std::move(status));
  }
}

void TreeClone::ClaimOrigin(DirectoryNode& node, Entry& entry) {
  InodeKey key{(uint64_t{entry.stat.stx_dev_major} << 32) | entry.stat.stx_dev_minor, entry.stat.stx_ino};
  std::lock_guard lock(mutex_);
  auto [it, inserted] = origins_.try_emplace(key);
  if (inserted) {
    it->second = std::make_shared<LinkOrigin>();
    it->second->target_path = JoinPath(node.path, entry.name);
  }
  entry.origin = it->second;
  entry.link_to_origin = !inserted;
}

Status TreeClone::CloneFiles(DirectoryNode& node, const std::vector<size_t>& indexes) {
  BatchIo& io = ThreadBatchIo(engine_);
  const CreationDefaults& defaults = CreationDefaults::Current();
  const open_how source_how = HowFor(O_RDONLY | (defaults.privileged ? O_NOATIME : 0), 0);
  std::vector<size_t> owned, links;
  for (size_t index : indexes) {
    Entry& entry = node.entries[index];
    if (entry.stat.stx_nlink > 1) ClaimOrigin(node, entry);
    (entry.link_to_origin ? links : owned).push_back(index);
  }
  for (size_t index : owned) {
    Entry& entry = node.entries[index];
    io.Openat2(node.source.get(), entry.name.c_str(), &source_how, &entry.source_fd);
    entry.create_how = HowFor(O_WRONLY | O_CREAT | O_EXCL, NewFileMode(entry.stat.stx_mode));
    io.Openat2(node.target.get(), entry.name.c_str(), &entry.create_how, &entry.target_fd);
  }
  io.Flush();
  Status status;
  for (size_t index : owned) {
    Entry& entry = node.entries[index];
    std::string path = JoinPath(node.path, entry.name);
    if (status.ok() && entry.source_fd < 0) {
      status = Status::FromErrno(-entry.source_fd, "open", SourcePath(path));
    }
    if (status.ok() && entry.target_fd < 0) {
      status = Status::FromErrno(-entry.target_fd, "create", TargetPath(path));
    }
    if (status.ok() && !Failed()) status = CloneFileData(entry, path);
    if (status.ok() && !Failed()) {
      mode_t created = defaults.Created(NewFileMode(entry.stat.stx_mode));
      status = CopyMetadata(entry.source_fd, entry.target_fd, entry.stat, created, TargetPath(path));
    }
    if (entry.origin) {
      std::lock_guard lock(entry.origin->mutex);
      entry.origin->ready = true;
      entry.origin->cloned = status.ok();
      entry.origin->ready_changed.notify_all();
    }
    if (entry.source_fd >= 0) io.Close(entry.source_fd);
    if (entry.target_fd >= 0) io.Close(entry.target_fd);
    entry.source_fd = entry.target_fd = -1;
  }
  io.Flush();
  FE_RETURN_IF_ERROR(status);
  // Links wait for their origin only now, when this thread owns no unfinished origin itself.
  return LinkToOrigins(node, links);
}

Status TreeClone::CloneFileData(Entry& entry, const std::string& path) {
  uint64_t size = entry.stat.stx_size;
  files_.fetch_add(1, std::memory_order_relaxed);
  logical_bytes_.fetch_add(size, std::memory_order_relaxed);
  if (size == 0) return Status::Ok();
  if (options_.data_mode == DataMode::kReflink) {
    if (::ioctl(entry.target_fd, FICLONE, entry.source_fd) == 0) {
      // The data now shared: allocated blocks, not holes (a sparse 2 GiB file holding 128 MiB shares 128 MiB).
      reflinked_bytes_.fetch_add(std::min<uint64_t>(size, entry.stat.stx_blocks * 512), std::memory_order_relaxed);
      return Status::Ok();
    }
    if (!FicloneRefused(errno)) return Status::FromErrno(errno, "FICLONE", TargetPath(path));
    fallback_files_.fetch_add(1, std::memory_order_relaxed);
  }
  Result<uint64_t> copied = SparseCopy(entry.source_fd, entry.target_fd, size, TargetPath(path));
  if (!copied.ok()) return copied.status();
  copied_bytes_.fetch_add(*copied, std::memory_order_relaxed);
  return Status::Ok();
}

Status TreeClone::LinkToOrigins(DirectoryNode& node, const std::vector<size_t>& indexes) {
  if (indexes.empty()) return Status::Ok();
  BatchIo& io = ThreadBatchIo(engine_);
  std::vector<int> results(indexes.size(), 0);
  for (size_t i = 0; i < indexes.size(); ++i) {
    LinkOrigin& origin = *node.entries[indexes[i]].origin;
    std::unique_lock lock(origin.mutex);
    origin.ready_changed.wait(lock, [&] { return origin.ready; });
    if (!origin.cloned) return Status::Ok();  // the origin's failure is already recorded
    io.Linkat(target_root_, origin.target_path.c_str(), node.target.get(), node.entries[indexes[i]].name.c_str(),
              &results[i]);
  }
  io.Flush();
  for (size_t i = 0; i < indexes.size(); ++i) {
    if (results[i] < 0) {
      return Status::FromErrno(-results[i], "hard link",
                               TargetPath(JoinPath(node.path, node.entries[indexes[i]].name)));
    }
    hardlinks_.fetch_add(1, std::memory_order_relaxed);
  }
  return Status::Ok();
}

void TreeClone::FinishPending(DirectoryNode& node) {
  if (node.pending.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (!Failed()) {
    Status status = CopyMetadata(node.source.get(), node.target.get(), node.stat,
                                 CreationDefaults::Current().Created(kNewDirectoryMode), TargetPath(node.path));
    if (!status.ok()) Fail(std::move(status));
  }
  node.source.reset();
  node.target.reset();
}

std::string TemporaryName(const std::string& target_name) {
  static std::atomic<uint64_t> counter{0};
  char suffix[64];
  std::snprintf(suffix, sizeof(suffix), ".forkengine-tmp-%d-%llu", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(counter.fetch_add(1)));
  return "." + target_name + suffix;
}

std::chrono::nanoseconds Since(Clock::time_point start) { return Clock::now() - start; }

Result<UniqueFd> OpenSourceRoot(int source_parent_fd, const std::string& source_name, const std::string& source_display,
                                struct statx& root_stat) {
  if (!IsSingleComponent(source_name)) {
    return Status::InvalidArgument("clone source name '" + source_name + "' is not one path component");
  }
  Result<UniqueFd> source_root = OpenBeneath(source_parent_fd, source_name, O_RDONLY | O_DIRECTORY, 0, source_display);
  if (!source_root.ok()) return source_root.status().Annotate("clone source");
  if (::statx(source_root->get(), "", AT_EMPTY_PATH, kStatxMask, &root_stat) != 0) {
    return Status::FromErrno(errno, "stat", source_display);
  }
  return source_root;
}

// The parallel part shared by CloneTree and CloneContents: fills `target_root_fd`.
Status CloneInto(int source_root_fd, const struct statx& root_stat, int target_root_fd,
                 const std::string& source_display, const std::string& target_display, const CloneOptions& options,
                 CloneReport& report) {
  const Clock::time_point tree_start = Clock::now();
  TreeClone clone(options, source_root_fd, target_root_fd, source_display, target_display);
  Status cloned = clone.Run(root_stat);
  clone.FillReport(report);
  report.phases.tree = Since(tree_start);
  return cloned;
}

Result<CloneReport> CloneTreeImpl(int source_parent_fd, const std::string& source_name, int target_parent_fd,
                                  const std::string& target_name, const std::string& source_display,
                                  const std::string& target_display, const CloneOptions& options) {
  const Clock::time_point start = Clock::now();
  CloneReport report;
  if (!IsSingleComponent(target_name)) {
    return Status::InvalidArgument("clone target name '" + target_name + "' is not one path component");
  }
  struct statx existing;
  if (::statx(target_parent_fd, target_name.c_str(), AT_SYMLINK_NOFOLLOW, 0, &existing) == 0) {
    return Status::AlreadyExists("clone target " + target_display + " already exists");
  }
  if (errno != ENOENT) return Status::FromErrno(errno, "stat clone target", target_display);
  struct statx root_stat;
  Result<UniqueFd> source_root = OpenSourceRoot(source_parent_fd, source_name, source_display, root_stat);
  if (!source_root.ok()) return source_root.status();

  const std::string temporary = TemporaryName(target_name);
  const std::string temporary_display = JoinPath(FdPath(target_parent_fd), temporary);
  if (::mkdirat(target_parent_fd, temporary.c_str(), kNewDirectoryMode) != 0) {
    return Status::FromErrno(errno, "create temporary clone", temporary_display);
  }
  auto abandon = [&](Status status) -> Status {
    Status removed = RemoveTree(target_parent_fd, temporary);
    if (!removed.ok()) {
      LogError("could not remove temporary clone: " + removed.message());
    }
    return status;
  };
  Result<UniqueFd> target_root = OpenBeneath(target_parent_fd, temporary, O_RDONLY | O_DIRECTORY, 0, temporary_display);
  if (!target_root.ok()) return abandon(target_root.status());
  report.phases.prepare = Since(start);

  Status cloned =
      CloneInto(source_root->get(), root_stat, target_root->get(), source_display, target_display, options, report);
  if (!cloned.ok()) return abandon(cloned);

  const Clock::time_point commit_start = Clock::now();
  // Under a DeferredSync scope the caller makes the clone durable together with the rest of its
  // operation (one syncfs before its final metadata names the clone; until then recovery removes it),
  // so the clone only notes its filesystem. A live fork clones while its source is paused: an fsync
  // there forces the filesystem's log, the source's RAM write-back included (~230 ms at 1 GiB here).
  DeferredSync* const deferred = options.durable ? DeferredSync::Current() : nullptr;
  if (deferred != nullptr) deferred->Note(target_parent_fd, target_display);
  const bool sync_here = options.durable && deferred == nullptr;
  // Reflinked extents are journaled metadata, ordered before the rename; copied data is not, so it
  // reaches the disk before the name does.
  if (report.copied_bytes > 0 && sync_here && ::syncfs(target_root->get()) != 0) {
    return abandon(Status::FromErrno(errno, "sync", temporary_display));
  }
  if (::renameat2(target_parent_fd, temporary.c_str(), target_parent_fd, target_name.c_str(), RENAME_NOREPLACE) != 0) {
    int err = errno;
    if (err == EEXIST) {
      return abandon(Status::AlreadyExists("clone target " + target_display + " already exists"));
    }
    return abandon(Status::FromErrno(err, "rename temporary clone into place as", target_display));
  }
  if (sync_here && ::fsync(target_parent_fd) != 0) {
    // The clone cannot be made durable: take it back rather than report a half-kept success.
    Status status = Status::FromErrno(errno, "fsync parent directory of", target_display);
    Status removed = RemoveTree(target_parent_fd, target_name);
    if (!removed.ok()) LogError(removed.message());
    return status;
  }
  report.phases.commit = Since(commit_start);
  report.total = Since(start);
  return report;
}

// Splits "a/b/c" into an open parent "a/b" and the name "c"; trailing slashes are ignored.
Result<std::pair<UniqueFd, std::string>> OpenParent(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  size_t slash = path.rfind('/');
  std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  UniqueFd fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Status::FromErrno(errno, "open directory", parent);
  return std::make_pair(std::move(fd), std::move(name));
}

}  // namespace

Result<CloneReport> CloneTree(int source_parent_fd, const std::string& source_name, int target_parent_fd,
                              const std::string& target_name, const CloneOptions& options) {
  return CloneTreeImpl(source_parent_fd, source_name, target_parent_fd, target_name,
                       JoinPath(FdPath(source_parent_fd), source_name), JoinPath(FdPath(target_parent_fd), target_name),
                       options);
}

Result<CloneReport> CloneContents(int source_parent_fd, const std::string& source_name, int target_root_fd,
                                  const CloneOptions& options) {
  const Clock::time_point start = Clock::now();
  const std::string source_display = JoinPath(FdPath(source_parent_fd), source_name);
  const std::string target_display = FdPath(target_root_fd);
  CloneReport report;
  struct statx root_stat;
  Result<UniqueFd> source_root = OpenSourceRoot(source_parent_fd, source_name, source_display, root_stat);
  if (!source_root.ok()) return source_root.status();
  report.phases.prepare = Since(start);
  FE_RETURN_IF_ERROR(
      CloneInto(source_root->get(), root_stat, target_root_fd, source_display, target_display, options, report));
  if (report.copied_bytes > 0 && options.durable && ::syncfs(target_root_fd) != 0) {
    return Status::FromErrno(errno, "sync", target_display);
  }
  report.total = Since(start);
  return report;
}

Result<CloneReport> CloneTree(const std::string& source, const std::string& target, const CloneOptions& options) {
  auto source_parent = OpenParent(source);
  if (!source_parent.ok()) return source_parent.status().Annotate("clone source " + source);
  auto target_parent = OpenParent(target);
  if (!target_parent.ok()) return target_parent.status().Annotate("clone target " + target);
  return CloneTreeImpl(source_parent->first.get(), source_parent->second, target_parent->first.get(),
                       target_parent->second, source, target, options);
}

}  // namespace fe::storage::tree
