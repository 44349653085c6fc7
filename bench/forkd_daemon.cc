#include "bench/forkd_daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include <httplib.h>

extern char** environ;

namespace fe::bench {

ForkdDaemon::~ForkdDaemon() { (void)Stop(); }

Status ForkdDaemon::Start(const std::string& binary, const std::string& data_root, const std::string& socket,
                          const std::vector<std::string>& args, const std::string& log_path) {
  std::vector<std::string> argv{binary, "--data-root", data_root, "--socket", socket};
  argv.insert(argv.end(), args.begin(), args.end());
  return Launch(argv, log_path, [&socket] { return Healthy(socket); });
}

bool ForkdDaemon::Healthy(const std::string& socket) {
  httplib::Client client(socket);
  client.set_address_family(AF_UNIX);
  httplib::Result health = client.Get("/v1/healthz");
  return health && health->status == 200;
}

Status ForkdDaemon::Launch(const std::vector<std::string>& argv_strings, const std::string& log_path,
                           const std::function<bool()>& ready) {
  log_path_ = log_path;
  std::vector<std::string> arguments = argv_strings;
  std::vector<char*> argv;
  for (std::string& arg : arguments) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  int error = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    pid_ = -1;
    return Status::FromErrno(error, "spawning", arguments.front());
  }
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(std::chrono::milliseconds(20))) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Internal(arguments.front() + " exited (wait status " + std::to_string(status) + "); see " +
                              log_path);
    }
    if (ready()) return Status::Ok();
  }
  return Status::Internal(arguments.front() + " was not ready within 60 s; see " + log_path);
}

void ForkdDaemon::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

Status ForkdDaemon::Stop() {
  if (pid_ <= 0) return Status::Ok();
  ::kill(pid_, SIGTERM);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  return Status::Internal("forkd ended with wait status " + std::to_string(status) + "; see " + log_path_);
}

}  // namespace fe::bench
