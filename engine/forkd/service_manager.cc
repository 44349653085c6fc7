#include "engine/forkd/service_manager.h"

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include "base/log.h"

namespace fe::engine::forkd {
namespace {

// The "<N>" prefix of an spdlog level: <7> debug and trace, <6> info, <4> warn, <3> error, <2> critical.
std::string_view JournalPriorityPrefix(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug: return "<7>";
    case spdlog::level::info: return "<6>";
    case spdlog::level::warn: return "<4>";
    case spdlog::level::err: return "<3>";
    case spdlog::level::critical: return "<2>";
    default: return "<6>";
  }
}

bool StderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return std::string(stream) == std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

// "%*": the line's journald priority.
class JournalPriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& message, const std::tm&, spdlog::memory_buf_t& out) override {
    const std::string_view prefix = JournalPriorityPrefix(message.level);
    out.append(prefix.data(), prefix.data() + prefix.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JournalPriorityFlag>(); }
};

}  // namespace

Result<std::optional<ActivatedSocket>> TakeActivatedSocket() {
  // unset_environment = 1: the LISTEN_* variables are this process's only.
  const int count = ::sd_listen_fds(1);
  if (count < 0) return Status::FromErrno(-count, "reading the sockets systemd passed (LISTEN_FDS)", "forkd");
  if (count == 0) return std::optional<ActivatedSocket>();
  if (count > 1) {
    return Status::InvalidArgument("systemd passed " + std::to_string(count) +
                                   " sockets; forkd.socket must listen on exactly one Unix stream socket");
  }
  const int fd = SD_LISTEN_FDS_START;
  const int is_unix = ::sd_is_socket_unix(fd, SOCK_STREAM, 1, nullptr, 0);
  if (is_unix < 0) return Status::FromErrno(-is_unix, "inspecting the socket systemd passed", "fd 3");
  if (is_unix == 0) {
    return Status::InvalidArgument("the socket systemd passed (fd 3) is not a listening Unix stream socket");
  }
  sockaddr_un address{};
  socklen_t length = sizeof(address);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return Status::FromErrno(errno, "getsockname of the socket systemd passed", "fd 3");
  }
  const size_t path_bytes = length > offsetof(sockaddr_un, sun_path) ? length - offsetof(sockaddr_un, sun_path) : 0;
  if (path_bytes == 0 || address.sun_path[0] == '\0') {
    return Status::InvalidArgument("the socket systemd passed (fd 3) has no path (abstract or unnamed)");
  }
  ActivatedSocket socket;
  socket.fd = fd;
  socket.path = std::string(address.sun_path, ::strnlen(address.sun_path, path_bytes));
  return std::optional<ActivatedSocket>(std::move(socket));
}

Status NotifyServiceManager(std::string_view state) {
  const int sent = ::sd_notify(0, std::string(state).c_str());
  if (sent < 0) return Status::FromErrno(-sent, "notifying systemd (NOTIFY_SOCKET)", std::string(state));
  return Status::Ok();
}

void ConfigureLogFormat() {
  if (!StderrIsJournal()) {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    return;
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<JournalPriorityFlag>('*').set_pattern("%*%l %v");
  spdlog::set_formatter(std::move(formatter));
}

namespace {

void LogToSpdlog(LogLevel level, std::string_view message) {
  switch (level) {
    case LogLevel::kDebug: spdlog::debug("{}", message); break;
    case LogLevel::kInfo: spdlog::info("{}", message); break;
    case LogLevel::kWarning: spdlog::warn("{}", message); break;
    case LogLevel::kError: spdlog::error("{}", message); break;
  }
}

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void PrepareDaemonProcess() {
  SetLogSink(&LogToSpdlog);
  const sigset_t set = StopSignals();
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

std::string WaitForStopSignal() {
  const sigset_t set = StopSignals();
  int received = 0;
  ::sigwait(&set, &received);
  return ::strsignal(received);
}

}  // namespace fe::engine::forkd
