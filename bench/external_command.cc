#include "bench/external_command.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "base/unique_fd.h"
#include "bench/interrupt.h"

extern char** environ;

namespace fe::bench {
namespace {

std::string ReadAll(int fd) {
  std::string text;
  char buffer[4096];
  off_t offset = 0;
  ssize_t n;
  while ((n = ::pread(fd, buffer, sizeof buffer, offset)) > 0) {
    text.append(buffer, n);
    offset += n;
  }
  return text;
}

// Waits for the child even when a signal interrupts us; on our own stop request the child is asked
// to stop too, because SIGTERM sent to this process alone does not reach it.
Result<int> WaitForChild(pid_t pid, const std::string& command) {
  bool forwarded = false;
  while (true) {
    int status = 0;
    pid_t done = ::waitpid(pid, &status, 0);
    if (done == pid) return status;
    if (errno != EINTR) return Status::FromErrno(errno, "waitpid", command);
    if (Interrupted() && !forwarded) {
      ::kill(pid, SIGTERM);
      forwarded = true;
    }
  }
}

}  // namespace

std::string CommandLine(const std::vector<std::string>& argv) {
  std::string line;
  for (const std::string& arg : argv) line += (line.empty() ? "" : " ") + arg;
  return line;
}

Result<std::chrono::nanoseconds> TimeCommand(const std::vector<std::string>& argv) {
  std::string command = CommandLine(argv);
  // stderr goes to an in-memory file, read only when the command fails: no pipe to drain while
  // the clock runs.
  UniqueFd errors(::memfd_create("forkbench-stderr", MFD_CLOEXEC));
  if (!errors) return Status::FromErrno(errno, "memfd_create", command);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, errors.get(), STDERR_FILENO);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);

  pid_t pid = 0;
  auto start = std::chrono::steady_clock::now();
  int spawn_error = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawn_error != 0) return Status::FromErrno(spawn_error, "spawn", command);
  Result<int> status = WaitForChild(pid, command);
  auto elapsed = std::chrono::steady_clock::now() - start;
  FE_RETURN_IF_ERROR(status.status());
  FE_RETURN_IF_ERROR(CheckInterrupted());
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    std::string how = WIFEXITED(*status) ? "exited with " + std::to_string(WEXITSTATUS(*status))
                                         : "killed by signal " + std::to_string(WTERMSIG(*status));
    return Status::Io(command + " " + how + ": " + ReadAll(errors.get()));
  }
  return std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed);
}

}  // namespace fe::bench
