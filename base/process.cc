#include "base/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "base/unique_fd.h"

extern char** environ;

namespace fe {
namespace {

std::string CommandLine(const std::vector<std::string>& argv) {
  std::string line;
  for (const std::string& arg : argv) {
    if (!line.empty()) line += ' ';
    line += arg;
  }
  return line;
}

}  // namespace

Result<ProcessResult> RunProcess(const std::vector<std::string>& argv) {
  if (argv.empty()) return Status::InvalidArgument("RunProcess: empty argv");
  const std::string command = CommandLine(argv);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Status::FromErrno(errno, "pipe for", command);
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);

  posix_spawn_file_actions_t actions;
  if (int err = ::posix_spawn_file_actions_init(&actions); err != 0) {
    return Status::FromErrno(err, "spawn", command);
  }
  // dup2 clears FD_CLOEXEC on the new descriptors; the originals close on exec.
  int err = ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (err == 0) err = ::posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
  if (err == 0) err = ::posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDERR_FILENO);

  pid_t child = -1;
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);

  // The child starts with no blocked signals and default SIGPIPE, whatever this thread has set up.
  posix_spawnattr_t attr;
  if (err == 0) err = ::posix_spawnattr_init(&attr);
  if (err == 0) {
    sigset_t none, pipe;
    sigemptyset(&none);
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    ::posix_spawnattr_setsigmask(&attr, &none);
    ::posix_spawnattr_setsigdefault(&attr, &pipe);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    err = ::posix_spawnp(&child, args[0], &actions, &attr, args.data(), environ);
    ::posix_spawnattr_destroy(&attr);
  }
  ::posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return Status::FromErrno(err, "spawn", command);
  write_end.reset();

  ProcessResult result;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
    if (n > 0) {
      result.output.append(buffer, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;  // EOF, or a read error: still reap the child below
    }
  }

  int wait_status = 0;
  while (::waitpid(child, &wait_status, 0) < 0) {
    if (errno != EINTR) return Status::FromErrno(errno, "waitpid for", command);
  }
  if (WIFEXITED(wait_status)) {
    result.exit_code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    result.signal = WTERMSIG(wait_status);
  }
  return result;
}

Status RunProcessChecked(const std::vector<std::string>& argv) {
  Result<ProcessResult> result = RunProcess(argv);
  if (!result.ok()) return result.status();
  if (result->exit_code == 0) return Status::Ok();
  std::string message = CommandLine(argv);
  if (result->signal != 0) {
    message += ": killed by signal " + std::to_string(result->signal);
  } else {
    message += ": exit status " + std::to_string(result->exit_code);
  }
  std::string output = result->output;
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  if (!output.empty()) message += ": " + output;
  return Status::Io(std::move(message));
}

}  // namespace fe
