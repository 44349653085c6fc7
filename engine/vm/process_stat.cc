#include "engine/vm/process_stat.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>

#include "base/unique_fd.h"

namespace fe::engine::vm {
namespace {

// Counted from field 3, the first one after "(comm)": 14 utime, 15 stime, 22 starttime.
constexpr int kUserTimeIndex = 14 - 3;
constexpr int kSystemTimeIndex = 15 - 3;
constexpr int kStartTimeIndex = 22 - 3;

bool ParseNumber(std::string_view field, uint64_t& out) {
  const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), out);
  return error == std::errc() && end == field.data() + field.size();
}

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
      if (!ParseNumber(field, stat.start_time)) {
        return Malformed(origin, "start time '" + std::string(field) + "' is not a number");
      }
    } else if (index == kUserTimeIndex || index == kSystemTimeIndex) {
      uint64_t ticks = 0;
      if (!ParseNumber(field, ticks)) return Malformed(origin, "CPU time '" + std::string(field) + "' is not a number");
      stat.cpu_ticks += ticks;
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
