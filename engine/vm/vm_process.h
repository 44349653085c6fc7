// A handle on one hypervisor process, identified by (pid, start time) and reached through a pidfd: a
// signal or a wait through it can never hit another process that has since taken the pid.
//
// Processes are started in a session of their own and do not die with forkd, so a handle is made
// either by Spawn (forkd is the parent: waiting reaps the zombie) or by Attach to a process recorded
// earlier (after a daemon restart init is the parent and reaps it).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/unique_fd.h"

namespace fe::engine::vm {

class VmProcess {
 public:
  // Starts argv[0] (searched in PATH) in a new session, stdin from /dev/null, stdout and stderr
  // appended to `log_path` (created 0644 if missing), no other descriptor inherited, signal mask and
  // dispositions reset. The error names argv[0] and errno's text when it cannot be started.
  static Result<VmProcess> Spawn(const std::vector<std::string>& argv, const std::string& log_path);
  // The running process `pid` if its start time is `start_time`. NotFound when the pid is gone, is a
  // zombie (reaped here when it is forkd's child), or belongs to another process now.
  static Result<VmProcess> Attach(pid_t pid, uint64_t start_time);

  VmProcess(VmProcess&&) = default;
  VmProcess& operator=(VmProcess&&) = default;

  pid_t pid() const { return pid_; }
  uint64_t start_time() const { return start_time_; }
  // Size of the log when the process was spawned: what it wrote starts there (0 after Attach).
  uint64_t log_offset() const { return log_offset_; }

  // True once the process has exited (it is reaped then, when it is forkd's child).
  bool Exited();
  // Waits up to `timeout` for the process to exit; true once it has.
  bool WaitForExit(std::chrono::milliseconds timeout);
  // SIGKILL, then waits for the exit. Ok when it had already exited.
  Status Kill();
  // "exited with status 1", "killed by signal 9"; "exited" when the status is not forkd's to collect,
  // "running" before the exit.
  std::string ExitDescription() const;
  // Exit status 126 or 127: a wrapper (unshare, env) could not execute the program it was to run.
  bool ExitedUnableToExecute() const { return exit_code_ == 126 || exit_code_ == 127; }

 private:
  VmProcess(UniqueFd pidfd, pid_t pid, uint64_t start_time, uint64_t log_offset)
      : pidfd_(std::move(pidfd)), pid_(pid), start_time_(start_time), log_offset_(log_offset) {}
  // Collects the exit status if forkd is the parent; no-op otherwise.
  void Reap();

  UniqueFd pidfd_;
  pid_t pid_ = 0;
  uint64_t start_time_ = 0;
  uint64_t log_offset_ = 0;
  bool exited_ = false;
  int exit_code_ = -1;  // the exit status once collected; -1 when killed by a signal or not collected
  // Empty until forkd collects the status. (Not an optional<string>: GCC 12 warns falsely about its
  // move under -O1 and sanitizers.)
  std::string exit_description_;
};

}  // namespace fe::engine::vm
