#include "hypervisor/firecracker/source_alias.h"
#include "snapshot/path_rewrite.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <thread>

#include "base/atomic_file.h"

namespace fe::hypervisor::firecracker {
namespace {

using snapshot::IsBeneath;

bool IsCleanAbsolute(const std::string& path) {
  return path.size() > 1 && path.front() == '/' && path.back() != '/' && path.find("//") == std::string::npos &&
         path.find("/./") == std::string::npos && path.find("/../") == std::string::npos && !path.ends_with("/.") &&
         !path.ends_with("/..");
}

std::string ParentOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

Status CreateDirectories(const std::string& dir) {
  for (size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    std::string prefix = slash == std::string::npos ? dir : dir.substr(0, slash);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST)
      return Status::FromErrno(errno, "create directory", prefix);
    if (slash == std::string::npos) return Status::Ok();
  }
}

// Removes an empty placeholder directory. Gone already, or no longer empty (someone made it a real
// directory), both end our responsibility for it.
Status RemovePlaceholder(const std::string& dir) {
  if (::rmdir(dir.c_str()) == 0 || errno == ENOENT || errno == ENOTEMPTY || errno == EEXIST) return Status::Ok();
  return Status::FromErrno(errno, "remove placeholder directory", dir);
}

// Placeholders recorded by a holder of the lock that did not finish: remove them, then the record.
Status RecoverPlaceholders(const std::string& intent_path) {
  Result<std::string> text = ReadSmallFile(intent_path);
  if (!text.ok()) return text.status().sys_errno() == ENOENT ? Status::Ok() : text.status();
  Result<Json> record = ParseObject(*text, intent_path);
  if (record.ok()) {
    auto created = record->find("created");
    if (created != record->end() && created->is_array()) {
      for (auto it = created->rbegin(); it != created->rend(); ++it) {
        if (it->is_string() && IsCleanAbsolute(it->get<std::string>())) {
          FE_RETURN_IF_ERROR(RemovePlaceholder(it->get<std::string>()).Annotate("recovering " + intent_path));
        }
      }
    }
  }
  if (::unlink(intent_path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno(errno, "remove", intent_path);
  return Status::Ok();
}

// ---- the system NamespaceMounts ----

int PidfdSendSignal(int pidfd, int signal) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

// Runs `operation` (async-signal-safe: raw syscalls only) in a forked helper that has entered the
// mount namespace of `pid` and made its mounts slaves (shared ones stop propagating out; private ones
// stay private). Returns the errno of the step that failed.
struct NamespaceError {
  int stage = 0;  // 0 ok, 1 setns, 2 make slave, 3 the operation
  int err = 0;
};

template <typename Operation>
Result<NamespaceError> RunInMountNamespace(int ns_fd, Operation operation) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Status::FromErrno(errno, "pipe", "for the namespace helper");
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);
  pid_t child = ::fork();
  if (child < 0) return Status::FromErrno(errno, "fork", "the namespace helper");
  if (child == 0) {
    NamespaceError result;
    if (::setns(ns_fd, CLONE_NEWNS) != 0) {
      result = {1, errno};
    } else if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) {
      result = {2, errno};
    } else if (operation() != 0) {
      result = {3, errno};
    }
    ssize_t ignored = ::write(write_end.get(), &result, sizeof(result));
    (void)ignored;
    ::_exit(result.stage == 0 ? 0 : 1);
  }
  write_end.reset();
  NamespaceError result{4, EPIPE};  // no report: the helper died before writing one
  ssize_t got;
  do {
    got = ::read(read_end.get(), &result, sizeof(result));
  } while (got < 0 && errno == EINTR);
  if (got != static_cast<ssize_t>(sizeof(result))) result = {4, EPIPE};
  int wait_status = 0;
  while (::waitpid(child, &wait_status, 0) < 0 && errno == EINTR) {
  }
  return result;
}

class SystemMounts final : public NamespaceMounts {
 public:
  Status Bind(pid_t pid, int pidfd, const std::string& from, const std::string& onto) override {
    Result<UniqueFd> ns = OpenNamespace(pid, pidfd);
    if (!ns.ok()) return ns.status();
    if (!*ns) return Status::NotFound("firecracker process " + std::to_string(pid) + " has exited");
    const char* from_c = from.c_str();
    const char* onto_c = onto.c_str();
    Result<NamespaceError> result =
        RunInMountNamespace(ns->get(), [&] { return ::mount(from_c, onto_c, nullptr, MS_BIND | MS_REC, nullptr); });
    if (!result.ok()) return result.status();
    return Report(*result, "bind-mount " + from + " onto", onto, pid);
  }

  Status Unmount(pid_t pid, int pidfd, const std::string& path) override {
    Result<UniqueFd> ns = OpenNamespace(pid, pidfd);
    if (!ns.ok()) return ns.status();
    if (!*ns) return Status::Ok();  // the process and its namespace are gone
    const char* path_c = path.c_str();
    Result<NamespaceError> result = RunInMountNamespace(ns->get(), [&] { return ::umount2(path_c, MNT_DETACH); });
    if (!result.ok()) return result.status();
    if (result->stage == 3 && result->err == EINVAL) return Status::Ok();  // nothing mounted there any more
    return Report(*result, "unmount", path, pid);
  }

 private:
  // The mount namespace of `pid`, or an empty fd when the process has exited.
  static Result<UniqueFd> OpenNamespace(pid_t pid, int pidfd) {
    const std::string ns_path = "/proc/" + std::to_string(pid) + "/ns/mnt";
    UniqueFd ns(::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) {
      if (errno == ENOENT || errno == ESRCH) return UniqueFd();
      return Status::FromErrno(errno, "open", ns_path);
    }
    // Opened after the pidfd was taken: if its process is still alive now, `ns` is its namespace
    // (a reused pid would belong to a new process, and the pidfd's would be dead).
    if (PidfdSendSignal(pidfd, 0) != 0) {
      if (errno == ESRCH) return UniqueFd();
      return Status::FromErrno(errno, "pidfd_send_signal", "process " + std::to_string(pid));
    }
    struct stat theirs {
    }, mine{};
    if (::fstat(ns.get(), &theirs) != 0) return Status::FromErrno(errno, "stat", ns_path);
    if (::stat("/proc/self/ns/mnt", &mine) != 0) return Status::FromErrno(errno, "stat", "/proc/self/ns/mnt");
    if (theirs.st_ino == mine.st_ino && theirs.st_dev == mine.st_dev) {
      return Status::InvalidArgument(
          "firecracker process " + std::to_string(pid) +
          " shares the engine's mount namespace: an alias there would be visible to the whole host, "
          "the running source included (start it with LaunchMode::kRestore, which gives it its own)");
    }
    return ns;
  }

  static Status Report(const NamespaceError& result, const std::string& operation, const std::string& path, pid_t pid) {
    const std::string where = " in the mount namespace of process " + std::to_string(pid);
    switch (result.stage) {
      case 0: return Status::Ok();
      case 1: return Status::FromErrno(result.err, "enter", "the mount namespace of process " + std::to_string(pid));
      case 2: return Status::FromErrno(result.err, "make mounts slaves", "/" + where);
      case 3: return Status::FromErrno(result.err, operation, path + where);
      default: return Status::Internal("the namespace helper for process " + std::to_string(pid) + " died");
    }
  }
};

}  // namespace

NamespaceMounts& SystemNamespaceMounts() {
  static SystemMounts mounts;
  return mounts;
}

std::string AliasLockPath(const std::string& lock_dir, const std::string& source_dir) {
  uint64_t hash = 14695981039346656037ull;  // FNV-1a: stable across builds and processes
  for (unsigned char c : source_dir) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(hash));
  return lock_dir + "/" + hex + ".lock";
}

Result<std::unique_ptr<SourceAlias>> SourceAlias::Create(pid_t pid, int pidfd, const PathAlias& alias,
                                                         const AliasOptions& options) {
  if (!IsCleanAbsolute(alias.from) || !IsCleanAbsolute(alias.to)) {
    return Status::InvalidArgument("source alias " + alias.from + " -> " + alias.to +
                                   ": both must be absolute directories without '.', '..' or '//'");
  }
  if (alias.from == alias.to || IsBeneath(alias.to, alias.from) || IsBeneath(alias.from, alias.to)) {
    return Status::InvalidArgument("source alias " + alias.from + " -> " + alias.to +
                                   ": the directories must not be equal or nested");
  }
  struct stat target {};
  if (::stat(alias.to.c_str(), &target) != 0) return Status::FromErrno(errno, "stat fork directory", alias.to);
  if (!S_ISDIR(target.st_mode)) return Status::InvalidArgument("fork directory " + alias.to + " is not a directory");
  if (options.lock_dir.empty() || options.lock_dir.front() != '/') {
    return Status::InvalidArgument("alias lock directory '" + options.lock_dir + "' is not absolute");
  }

  FE_RETURN_IF_ERROR(CreateDirectories(options.lock_dir));
  NamespaceMounts* mounts = options.mounts != nullptr ? options.mounts : &SystemNamespaceMounts();
  std::unique_ptr<SourceAlias> self(new SourceAlias(pid, pidfd, alias, mounts));
  const std::string lock_path = AliasLockPath(options.lock_dir, alias.from);
  self->intent_path_ = lock_path.substr(0, lock_path.size() - 5) + ".placeholders";
  // Another snapshot load of a fork of the same source holds the alias while it loads.
  Result<FileLock> lock = FileLock::Acquire(lock_path, "the alias lock of " + alias.from, options.lock_timeout);
  if (!lock.ok()) return lock.status();
  self->lock_.emplace(std::move(*lock));
  self->lock_->Describe(alias.from + "\n");  // for whoever looks at the lock directory

  // From here on every failure returns through `self`'s destructor, which undoes what was done.
  FE_RETURN_IF_ERROR(RecoverPlaceholders(self->intent_path_));
  FE_RETURN_IF_ERROR(self->MakeMountPoint());
  FE_RETURN_IF_ERROR(mounts->Bind(pid, pidfd, alias.to, alias.from)
                         .Annotate("aliasing " + alias.from + " to " + alias.to + " for a snapshot load"));
  self->mounted_ = true;
  return self;
}

Status SourceAlias::MakeMountPoint() {
  struct stat st {};
  if (::stat(alias_.from.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return Status::Ok();
    return Status::InvalidArgument("source path " + alias_.from + " exists but is not a directory");
  }
  if (errno != ENOENT) return Status::FromErrno(errno, "stat", alias_.from);
  // The source is gone: placeholders from the deepest existing ancestor down to the source path.
  std::vector<std::string> missing;
  for (std::string dir = alias_.from; dir != "/";) {
    if (::stat(dir.c_str(), &st) == 0) break;
    if (errno != ENOENT) return Status::FromErrno(errno, "stat", dir);
    missing.insert(missing.begin(), dir);
    dir = ParentOf(dir);
  }
  Json record = {{"source_dir", alias_.from}, {"created", missing}};
  FE_RETURN_IF_ERROR(ReplaceFileAtomically(intent_path_, record.dump(2) + "\n", 0600));
  wrote_intent_ = true;
  for (const std::string& dir : missing) {
    if (::mkdir(dir.c_str(), 0700) != 0) {
      if (errno == EEXIST) continue;  // appeared meanwhile (not ours: it is not recorded as created)
      return Status::FromErrno(errno, "create placeholder directory", dir);
    }
    placeholders_.push_back(dir);
  }
  return Status::Ok();
}

Status SourceAlias::RemovePlaceholders() {
  for (auto it = placeholders_.rbegin(); it != placeholders_.rend(); ++it) FE_RETURN_IF_ERROR(RemovePlaceholder(*it));
  placeholders_.clear();
  if (wrote_intent_ && ::unlink(intent_path_.c_str()) != 0 && errno != ENOENT) {
    return Status::FromErrno(errno, "remove", intent_path_);
  }
  wrote_intent_ = false;
  return Status::Ok();
}

Status SourceAlias::Remove() {
  if (removed_) return remove_status_;
  removed_ = true;
  Status status;
  if (mounted_) {
    status = mounts_->Unmount(pid_, pidfd_, alias_.from)
                 .Annotate("removing the alias of " + alias_.from + " to " + alias_.to);
    mounted_ = false;
  }
  // Placeholders go even when the unmount failed: removing the mount point on the host detaches a
  // mount left on it in another namespace.
  if (lock_) {
    Status placeholders = RemovePlaceholders();
    if (status.ok()) status = placeholders;
  }
  lock_.reset();  // releases the lock
  remove_status_ = status;
  return status;
}

SourceAlias::~SourceAlias() { (void)Remove(); }

}  // namespace fe::hypervisor::firecracker
