// The Unix socket forkd listens on: its directory only root can enter, a stale socket from a
// crashed daemon removed, but never the socket of a daemon that still answers.
#pragma once

#include <string>

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

}  // namespace fe::engine::forkd
