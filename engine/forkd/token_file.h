// The bearer token of forkd's TCP listener, read from a file the way ssh reads a private key: the
// file must be a regular file owned by forkd's user and unreadable by anyone else, or forkd refuses
// to start and says how to fix the mode. A token others can read is no secret.
#pragma once

#include <string>

#include "base/status.h"

namespace fe::engine::forkd {

// The token (surrounding whitespace removed). InvalidArgument when the file is empty; PermissionDenied
// naming the path, its mode and the chmod that fixes it when group or others may read or write it,
// or when it belongs to another user; NotFound/errno otherwise.
Result<std::string> ReadTokenFile(const std::string& path);

}  // namespace fe::engine::forkd
