#include "engine/vm/process_stat.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>

#include "base/unique_fd.h"

namespace fe::engine::vm {
namespace {

// Field 22 is the 20th field from field 3, the first one after "(comm)".
constexpr int kStartTimeIndex = 22 - 3;

Status Malformed(std::string_view origin, std::string_view why) {
  return Status::InvalidArgument(std::string(origin) + ": malformed stat line: " + std::string(why));
}

}  // namespace

Result<ProcStat> ParseProcStat(std::string_view text, std::string_view origin) {
  const size_t comm_end = text.rfind(')');
  if (comm_end == std::string_view::npos) return Malformed(origin, "no ')' closing the command name");
  std::string_view rest = text.substr(comm_end + 1);
  ProcStat stat;
  for (int index = 0; index <= kStartTimeIndex; ++index) {
    const size_t start = rest.find_first_not_of(" \n");
    if (start == std::string_view::npos) {
      return Malformed(origin, "only " + std::to_string(index + 2) + " fields, expected at least 22");
    }
    rest.remove_prefix(start);
    const std::string_view field = rest.substr(0, rest.find_first_of(" \n"));
    rest.remove_prefix(field.size());
    if (index == 0) {
      if (field.size() != 1) return Malformed(origin, "state '" + std::string(field) + "' is not one letter");
      stat.state = field[0];
    } else if (index == kStartTimeIndex) {
      const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), stat.start_time);
      if (error != std::errc() || end != field.data() + field.size()) {
        return Malformed(origin, "start time '" + std::string(field) + "' is not a number");
      }
    }
  }
  return stat;
}

Result<ProcStat> ReadProcStat(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::FromErrno(errno, "open", path);
  std::string text;
  char buffer[1024];
  for (;;) {
    const ssize_t got = ::read(fd.get(), buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    // A process that ends between open and read makes the read fail with ESRCH.
    if (got < 0) return Status::FromErrno(errno == ESRCH ? ENOENT : errno, "read", path);
    if (got == 0) break;
    text.append(buffer, static_cast<size_t>(got));
  }
  return ParseProcStat(text, path);
}

}  // namespace fe::engine::vm
