// The Unix socket forkd listens on: its directory only root can enter, a stale socket from a
// crashed daemon removed, but never the socket of a daemon that still answers; and the HOST:PORT
// addresses of TCP listeners.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "base/status.h"

namespace fe::engine::forkd {

// Creates the socket's parent directory (mode 0700) if missing, and removes a stale socket at
// `path`. AlreadyExists when a process accepts connections on it (another forkd); FailedPrecondition
// when `path` exists and is not a socket (never delete a file we did not make).
Status PrepareSocketPath(const std::string& path);

// PrepareSocketPath, then a Unix stream socket bound at `path` that is never reachable with a wider
// mode than 0600, listening with a full backlog (a burst of 50 concurrent clients must not be refused
// before the server accepts them). Returns its fd.
Result<int> BindUnixSocket(const std::string& path);

// "HOST:PORT" (an IPv6 host in brackets) as the pair; InvalidArgument naming `what` (the option, or
// whose address it is) when it does not parse. Port 0 (any free port) only when `allow_any_port`.
Result<std::pair<std::string, int>> ParseHostPort(std::string_view what, const std::string& text,
                                                  bool allow_any_port = false);

}  // namespace fe::engine::forkd
