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
  log_path_ = log_path;
  std::vector<std::string> argv_strings{binary, "--data-root", data_root, "--socket", socket};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  int error = ::posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    pid_ = -1;
    return Status::FromErrno(error, "spawning", binary);
  }
  httplib::Client client(socket);
  client.set_address_family(AF_UNIX);
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(std::chrono::milliseconds(20))) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Internal("forkd exited (wait status " + std::to_string(status) + "); see " + log_path);
    }
    httplib::Result health = client.Get("/v1/healthz");
    if (health && health->status == 200) return Status::Ok();
  }
  return Status::Internal("forkd did not answer /v1/healthz within 60 s; see " + log_path);
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
