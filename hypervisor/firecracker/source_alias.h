// The temporary source-path alias of a Firecracker snapshot load.
//
// Why. Firecracker's snapshot state embeds the absolute paths its devices were configured with (drive
// files, the vsock socket), and it opens them again while loading. A fork's copy of the state still
// names the source's directory, so while the fork's firecracker loads it, the source directory's path
// must lead to the fork's directory instead.
//
// How, without disturbing the source. The alias exists only inside the mount namespace of the fork's
// own firecracker process: Launch(kRestore) starts firecracker under `unshare --mount --propagation
// slave`, and SourceAlias bind-mounts the fork's directory over the source path in that namespace
// (entering it with setns from a short-lived helper process, after marking its mounts slave again).
// Slave propagation is one-way: nothing mounted in the fork's namespace ever reaches the host, while
// the host's mount events still reach the fork's namespace, so a filesystem unmounted on the host is
// not kept busy by the fork's copy of the mount table (private propagation would pin every mount that
// existed when the fork started, for as long as it runs). The host, the engine and the running source
// keep seeing the source directory as it is the whole time; nothing on the host is renamed, replaced
// or symlinked. After the load the bind mount is detached again (Remove, also on every error path and
// from the destructor). If the engine dies in between, the alias dies with the fork's firecracker
// process at the latest.
//
// The lock. One alias per source path at a time, host-wide: SourceAlias holds an exclusive flock on
// <lock_dir>/<hash of the source path>.lock from before it looks at the source path until the alias
// is gone (every engine on a host must use the same lock directory; the default is fixed for that).
// Two loads of forks of one source therefore run their alias sections one after the other
// (each takes milliseconds: memory is mapped lazily), while forks of different sources never wait for
// each other. What the lock protects is the one piece of host state an alias may need: when the
// source directory no longer exists (it was deleted after the fork was made), a bind mount needs a
// mount point, so SourceAlias creates the missing directories as empty placeholders and removes them
// afterwards. Without the lock, a second load could take the first one's placeholder for a real
// directory, and the first load's removal would then pull the mount point out from under the second
// load. The flock is released by the kernel if the engine dies, so a crash can never leave it stuck.
//
// Crash recovery. Before creating placeholders SourceAlias records them in
// <lock_dir>/<hash>.placeholders (written atomically); the next SourceAlias for that source, holding
// the lock, removes any recorded placeholder that is still an empty directory and then the record.
//
// Threads: a SourceAlias belongs to one thread; different instances may be used concurrently.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/file_lock.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "hypervisor/firecracker/snapshot_devices.h"

namespace fe::hypervisor::firecracker {

// Mount operations inside another process's mount namespace. Injectable, so the alias protocol can be
// tested without privileges; the system implementation needs CAP_SYS_ADMIN.
class NamespaceMounts {
 public:
  virtual ~NamespaceMounts() = default;
  // Recursively bind-mounts the directory `from` onto the existing directory `onto` in the mount
  // namespace of process `pid` (`pidfd` proves it is still the same process), after making that
  // namespace's mounts slaves, so the new mount cannot propagate out. Refused when that namespace is
  // the caller's own: the alias would be visible to the whole host.
  virtual Status Bind(pid_t pid, int pidfd, const std::string& from, const std::string& onto) = 0;
  // Detaches what is mounted on `path` in that namespace. Ok when the process has exited (its
  // namespace went with it) or nothing is mounted there any more.
  virtual Status Unmount(pid_t pid, int pidfd, const std::string& path) = 0;
};

// setns(2) + mount(2) in a forked helper.
NamespaceMounts& SystemNamespaceMounts();

struct AliasOptions {
  std::string lock_dir = "/run/forkengine/firecracker-alias";  // created (0700) when missing
  std::chrono::milliseconds lock_timeout{60000};
  NamespaceMounts* mounts = nullptr;  // nullptr: SystemNamespaceMounts()
};

// <lock_dir>/<16 hex digits of a hash of source_dir>.lock
std::string AliasLockPath(const std::string& lock_dir, const std::string& source_dir);

class SourceAlias {
 public:
  // Takes the lock of `alias.from` (Busy after options.lock_timeout), recovers a crashed holder's
  // placeholders, makes `alias.from` exist, and bind-mounts `alias.to` there in the mount namespace
  // of `pid`. On failure everything done so far is undone. InvalidArgument when the directories are
  // not absolute, equal or nested, or `alias.to` is not a directory.
  static Result<std::unique_ptr<SourceAlias>> Create(pid_t pid, int pidfd, const PathAlias& alias,
                                                     const AliasOptions& options);

  SourceAlias(const SourceAlias&) = delete;
  SourceAlias& operator=(const SourceAlias&) = delete;
  ~SourceAlias();  // Remove(), its error dropped

  // Detaches the bind mount, removes placeholders and releases the lock. Safe to call repeatedly;
  // the first call's result is returned again. The lock is released even when a step fails.
  Status Remove();

  const PathAlias& alias() const { return alias_; }

 private:
  SourceAlias(pid_t pid, int pidfd, PathAlias alias, NamespaceMounts* mounts)
      : pid_(pid), pidfd_(pidfd), alias_(std::move(alias)), mounts_(mounts) {}
  Status MakeMountPoint();
  Status RemovePlaceholders();

  const pid_t pid_;
  const int pidfd_;  // borrowed from the caller, which outlives this alias
  const PathAlias alias_;
  NamespaceMounts* const mounts_;
  std::optional<FileLock> lock_;  // held from Create until Remove
  std::string intent_path_;
  std::vector<std::string> placeholders_;  // directories created for the mount point, outermost first
  bool wrote_intent_ = false;              // intent_path_ records placeholders_ (it is removed with them)
  bool mounted_ = false;
  bool removed_ = false;
  Status remove_status_;
};

}  // namespace fe::hypervisor::firecracker
