#include "engine/forkd/token_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>

#include "base/atomic_file.h"
#include "base/unique_fd.h"

namespace fe::engine::forkd {
namespace {

constexpr size_t kMaxTokenFileBytes = 4096;

std::string OctalMode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

}  // namespace

Result<std::string> ReadTokenFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return Status::FromErrno(errno, "open token file", path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno(errno, "stat token file", path);
  if (st.st_uid != ::geteuid()) {
    return Status::PermissionDenied("token file " + path + " belongs to uid " + std::to_string(st.st_uid) +
                                    ", not to forkd's uid " + std::to_string(::geteuid()) +
                                    "; chown it to the user forkd runs as");
  }
  if ((st.st_mode & 077) != 0) {
    return Status::PermissionDenied("token file " + path + " has mode " + OctalMode(st.st_mode) +
                                    ": others can read or change the token; make it private with: chmod 600 " + path);
  }
  FE_ASSIGN_OR_RETURN(std::string token, ReadSmallFileFd(fd.get(), path, kMaxTokenFileBytes));
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  size_t start = 0;
  while (start < token.size() && std::isspace(static_cast<unsigned char>(token[start]))) ++start;
  token.erase(0, start);
  if (token.empty()) return Status::InvalidArgument("token file " + path + " is empty");
  return token;
}

}  // namespace fe::engine::forkd
