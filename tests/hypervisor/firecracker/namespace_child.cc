#include "tests/hypervisor/firecracker/namespace_child.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace fe::hypervisor::firecracker::test {
namespace {

bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t wrote = ::write(fd, data.data() + done, data.size() - done);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) return false;
    done += static_cast<size_t>(wrote);
  }
  return true;
}

// Reads up to '\n' (dropped); false at end of stream.
bool ReadLine(int fd, std::string& line) {
  line.clear();
  char c;
  while (true) {
    ssize_t got = ::read(fd, &c, 1);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    if (c == '\n') return true;
    line += c;
  }
}

std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '\n' ? ' ' : c;
  return out;
}

[[noreturn]] void ServePaths(int fd) {
  std::string path;
  while (ReadLine(fd, path)) {
    std::string answer;
    int file = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (file < 0) {
      answer = std::string("<") + std::strerror(errno) + ">";
    } else {
      char buffer[4096];
      ssize_t got;
      while ((got = ::read(file, buffer, sizeof(buffer))) > 0) answer.append(buffer, static_cast<size_t>(got));
      ::close(file);
    }
    if (!WriteAll(fd, Escape(answer) + "\n")) break;
  }
  ::_exit(0);
}

}  // namespace

bool CanMakeMountNamespaces(std::string* why) {
  if (::geteuid() != 0) {
    *why = "needs root (CAP_SYS_ADMIN) to make mount namespaces";
    return false;
  }
  pid_t child = ::fork();
  if (child == 0) {
    bool ok = ::unshare(CLONE_NEWNS) == 0 && ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    *why = "unshare(CLONE_NEWNS) is not permitted here";
    return false;
  }
  return true;
}

Result<NamespaceChild> NamespaceChild::Start(std::function<void()> serve, bool new_namespace) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return Status::FromErrno(errno, "socketpair", "");
  UniqueFd parent_end(fds[0]);
  UniqueFd child_end(fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) return Status::FromErrno(errno, "fork", "namespace child");
  if (pid == 0) {
    parent_end.reset();
    char ready = '1';
    if (new_namespace &&
        (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0)) {
      ready = '0';
    }
    WriteAll(child_end.get(), std::string(1, ready));
    if (ready != '1') ::_exit(1);
    if (serve) {
      serve();
      ::_exit(0);
    }
    ServePaths(child_end.get());
  }
  child_end.reset();
  NamespaceChild child;
  child.pid_ = pid;
  child.channel_ = std::move(parent_end);
  child.pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  char ready = 0;
  if (::read(child.channel_.get(), &ready, 1) != 1 || ready != '1') {
    return Status::Unsupported("the child could not make a mount namespace of its own");
  }
  if (!child.pidfd_) return Status::FromErrno(errno, "pidfd_open", std::to_string(pid));
  return child;
}

NamespaceChild::NamespaceChild(NamespaceChild&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), pidfd_(std::move(other.pidfd_)), channel_(std::move(other.channel_)) {}

NamespaceChild::~NamespaceChild() { Kill(); }

std::string NamespaceChild::Read(const std::string& path) {
  if (!WriteAll(channel_.get(), path + "\n")) return "<child gone>";
  std::string line;
  if (!ReadLine(channel_.get(), line)) return "<child gone>";
  return line;
}

void NamespaceChild::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

}  // namespace fe::hypervisor::firecracker::test
