#include "engine/forkd/socket_setup.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/fs_util.h"
#include "base/unique_fd.h"

namespace fe::engine::forkd {

Status PrepareSocketPath(const std::string& path) {
  sockaddr_un address{};
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return Status::InvalidArgument("socket path '" + path + "' must have 1 to " +
                                   std::to_string(sizeof(address.sun_path) - 1) + " bytes");
  }
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) FE_RETURN_IF_ERROR(MakeDirectories(path.substr(0, slash), 0700));

  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::FromErrno(errno, "lstat", path);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Status::FailedPrecondition(path + " exists and is not a socket; not removing it");
  }
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe.valid()) return Status::FromErrno(errno, "socket", path);
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size());
  if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    return Status::AlreadyExists(path + ": another process (a running forkd?) accepts connections on it");
  }
  if (errno != ECONNREFUSED) return Status::FromErrno(errno, "probing socket", path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno(errno, "removing stale socket", path);
  return Status::Ok();
}

Result<int> BindUnixSocket(const std::string& path) {
  FE_RETURN_IF_ERROR(PrepareSocketPath(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status::FromErrno(errno, "socket", path);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size());
  const mode_t old_mask = ::umask(0177);
  const int bound = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address));
  const int bind_errno = errno;
  ::umask(old_mask);
  if (bound != 0) return Status::FromErrno(bind_errno, "bind", path);
  if (::chmod(path.c_str(), 0600) != 0) return Status::FromErrno(errno, "chmod 0600", path);
  if (::listen(fd.get(), SOMAXCONN) != 0) return Status::FromErrno(errno, "listen", path);
  return fd.release();
}

Result<std::pair<std::string, int>> ParseHostPort(std::string_view what, const std::string& text, bool allow_any_port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Status::InvalidArgument(std::string(what) + " '" + text + "' is not HOST:PORT");
  }
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    size_t used = 0;
    port = std::stoi(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1) port = -1;
  } catch (const std::exception&) {
    port = -1;
  }
  if (port < 0 || port > 65535 || (port == 0 && !allow_any_port)) {
    return Status::InvalidArgument(std::string(what) + " '" + text + "': bad port");
  }
  return std::make_pair(host, port);
}

}  // namespace fe::engine::forkd
