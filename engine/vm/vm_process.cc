#include "engine/vm/vm_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/vm/process_stat.h"

extern char** environ;

namespace fe::engine::vm {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// SIGKILL ends a process at once unless it sits in an uninterruptible wait; past this it is stuck.
constexpr milliseconds kKillWait{10'000};

// The owned parts of a posix_spawn call, released on every path.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  SpawnSetup() {
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawnattr_init(&attributes);
  }
  ~SpawnSetup() {
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attributes);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

std::string Join(const std::vector<std::string>& argv) {
  std::string text;
  for (const std::string& arg : argv) text += (text.empty() ? "" : " ") + arg;
  return text;
}

// glibc 2.36's <sys/pidfd.h> lacks extern "C" (fixed in 2.37): the system calls are made directly.
int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int PidfdSendSignal(int pidfd, int signal) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

// Kills and reaps a child that could not be made into a VmProcess.
void Discard(pid_t pid) {
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

Result<VmProcess> VmProcess::Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  if (argv.empty()) return Status::InvalidArgument("starting a hypervisor: empty command line");
  UniqueFd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!log) return Status::FromErrno(errno, "open hypervisor log", log_path);
  struct stat info {};
  if (::fstat(log.get(), &info) != 0) return Status::FromErrno(errno, "fstat", log_path);
  // The command heads this start's part of the log, so a failure's log tail shows what was run.
  const std::string header = "forkengine: exec " + Join(argv) + "\n";
  if (::write(log.get(), header.data(), header.size()) < 0) return Status::FromErrno(errno, "write", log_path);

  SpawnSetup setup;
  ::posix_spawn_file_actions_addopen(&setup.actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&setup.actions, log.get(), STDOUT_FILENO);
  ::posix_spawn_file_actions_adddup2(&setup.actions, log.get(), STDERR_FILENO);
  ::posix_spawn_file_actions_addclosefrom_np(&setup.actions, STDERR_FILENO + 1);
  // A session of its own: the VM outlives forkd and no terminal or process-group signal reaches it.
  // forkd's blocked signals and handlers are not the hypervisor's business.
  sigset_t none;
  sigset_t all;
  ::sigemptyset(&none);
  ::sigfillset(&all);
  ::posix_spawnattr_setsigmask(&setup.attributes, &none);
  ::posix_spawnattr_setsigdefault(&setup.attributes, &all);
  ::posix_spawnattr_setflags(&setup.attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int error = ::posix_spawnp(&pid, args[0], &setup.actions, &setup.attributes, args.data(), environ);
  if (error == ENOENT || error == EACCES || error == ENOEXEC || error == ENOTDIR) {
    // Not "not found" (404 reads as "instance gone"): this host cannot run the hypervisor.
    return Status::Unsupported("hypervisor binary '" + argv[0] + "' cannot be run (" + std::strerror(error) +
                               "): it is not installed or not in forkd's PATH");
  }
  if (error != 0) return Status::FromErrno(error, "start hypervisor", argv[0]);

  // Until forkd reaps it, the child's pid cannot be reused: the pidfd and the start time are its own.
  UniqueFd pidfd(PidfdOpen(pid));
  if (!pidfd) {
    const int open_error = errno;
    Discard(pid);
    return Status::FromErrno(open_error, "pidfd_open of " + argv[0] + " pid", std::to_string(pid));
  }
  Result<ProcStat> stat = ReadProcStat(pid);
  if (!stat.ok()) {
    Discard(pid);
    return stat.status().Annotate("start time of " + argv[0]);
  }
  return VmProcess(std::move(pidfd), pid, stat->start_time, static_cast<uint64_t>(info.st_size));
}

Result<VmProcess> VmProcess::Attach(pid_t pid, uint64_t start_time) {
  const std::string name = "process " + std::to_string(pid);
  if (pid <= 0) return Status::NotFound(name + ": not a process id");
  UniqueFd pidfd(PidfdOpen(pid));
  if (!pidfd) {
    if (errno == ESRCH) return Status::NotFound(name + " has exited");
    return Status::FromErrno(errno, "pidfd_open of", name);
  }
  // Read after the pidfd is open: if the start time still matches, the pidfd is that process.
  Result<ProcStat> stat = ReadProcStat(pid);
  if (!stat.ok()) {
    if (stat.status().code() == ErrorCode::kNotFound) return Status::NotFound(name + " has exited");
    return stat.status();
  }
  if (stat->start_time != start_time) {
    return Status::NotFound(name + " has exited: the pid now belongs to a process started at tick " +
                            std::to_string(stat->start_time) + ", not " + std::to_string(start_time));
  }
  VmProcess process(std::move(pidfd), pid, start_time, 0);
  if (stat->state == 'Z') {
    process.Reap();
    return Status::NotFound(name + " has exited (a zombie, not yet reaped)");
  }
  return process;
}

void VmProcess::Reap() {
  siginfo_t info{};
  if (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED | WNOHANG) != 0) {
    // ECHILD: not forkd's child (forkd restarted since), init collects it.
    if (errno == ECHILD) exited_ = true;
    return;
  }
  if (info.si_pid == 0) return;  // still running
  exited_ = true;
  if (info.si_code == CLD_EXITED) {
    exit_code_ = info.si_status;
    exit_description_ = "exited with status " + std::to_string(info.si_status);
  } else {
    exit_description_ = "killed by signal " + std::to_string(info.si_status);
  }
}

bool VmProcess::Exited() { return WaitForExit(milliseconds(0)); }

bool VmProcess::WaitForExit(milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (!exited_) {
    const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now());
    pollfd watch{pidfd_.get(), POLLIN, 0};
    const int ready = ::poll(&watch, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return false;
    if (ready > 0) {
      // Readable: the process has exited. Reap it if it is forkd's; either way it is gone.
      Reap();
      exited_ = true;
    } else if (Clock::now() >= deadline) {
      return false;
    }
  }
  return true;
}

Status VmProcess::Kill() {
  if (Exited()) return Status::Ok();
  const std::string name = "process " + std::to_string(pid_);
  if (PidfdSendSignal(pidfd_.get(), SIGKILL) != 0 && errno != ESRCH) {
    return Status::FromErrno(errno, "SIGKILL", name);
  }
  if (!WaitForExit(kKillWait)) {
    return Status::Io(name + " did not exit within " + std::to_string(kKillWait.count()) +
                      " ms of SIGKILL (stuck in an uninterruptible wait?)");
  }
  return Status::Ok();
}

std::string VmProcess::ExitDescription() const {
  if (!exit_description_.empty()) return exit_description_;
  return exited_ ? "exited" : "running";
}

}  // namespace fe::engine::vm
