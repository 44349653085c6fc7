// A client end of a Unix stream socket, for tests that talk to a server byte by byte (idle,
// trickling and hostile clients).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <string>

#include "base/unique_fd.h"

namespace fe::test {

// Connected to `path`, or an invalid fd when the connect fails.
inline UniqueFd ConnectUnixSocket(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  if (!fd || path.size() >= sizeof(address.sun_path)) return UniqueFd();
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) return UniqueFd();
  return fd;
}

}  // namespace fe::test
