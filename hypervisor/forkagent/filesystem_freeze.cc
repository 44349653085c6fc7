#include "hypervisor/forkagent/filesystem_freeze.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "hypervisor/forkagent/log.h"

namespace fe::hypervisor::forkagent {
namespace {

// /proc/self/mounts escapes space, tab, newline and backslash as \ooo.
std::string Unescape(std::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      const std::string_view digits = field.substr(i + 1, 3);
      if (std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        out += static_cast<char>((digits[0] - '0') * 64 + (digits[1] - '0') * 8 + (digits[2] - '0'));
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

std::vector<std::string> Words(const std::string& line) {
  std::istringstream stream(line);
  std::vector<std::string> words;
  for (std::string word; stream >> word;) words.push_back(word);
  return words;
}

bool HasOption(const std::string& options, std::string_view wanted) {
  std::istringstream stream(options);
  for (std::string option; std::getline(stream, option, ',');) {
    if (option == wanted) return true;
  }
  return false;
}

Result<std::string> ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::FromErrno(errno, "open", path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::vector<std::string> FreezableMounts(std::string_view proc_mounts) {
  std::vector<std::string> mounts;
  std::istringstream stream{std::string(proc_mounts)};
  for (std::string line; std::getline(stream, line);) {
    const std::vector<std::string> words = Words(line);
    if (words.size() < 4) continue;
    if (words[0].rfind("/dev/", 0) != 0 || !HasOption(words[3], "rw")) continue;
    mounts.push_back(Unescape(words[1]));
  }
  std::reverse(mounts.begin(), mounts.end());
  return mounts;
}

std::vector<std::string> BlockDeviceSwaps(std::string_view proc_swaps) {
  std::vector<std::string> swaps;
  std::istringstream stream{std::string(proc_swaps)};
  for (std::string line; std::getline(stream, line);) {
    const std::vector<std::string> words = Words(line);
    if (words.size() >= 2 && words[1] == "partition") swaps.push_back(Unescape(words[0]));
  }
  return swaps;
}

SystemFilesystemFreezer::SystemFilesystemFreezer(std::string mounts_path, std::string swaps_path)
    : mounts_path_(std::move(mounts_path)), swaps_path_(std::move(swaps_path)), watchdog_([this] { Watch(); }) {}

SystemFilesystemFreezer::~SystemFilesystemFreezer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    std::vector<std::string> thawed;
    (void)ThawLocked(thawed);
  }
  changed_.notify_all();
  watchdog_.join();
}

Result<std::vector<std::string>> SystemFilesystemFreezer::Freeze(std::chrono::milliseconds thaw_after) {
  std::unique_lock lock(mutex_);
  if (!frozen_.empty()) return Status::FailedPrecondition("the filesystems are frozen already");
  FE_ASSIGN_OR_RETURN(const std::string swaps, ReadText(swaps_path_));
  if (std::vector<std::string> on_disk = BlockDeviceSwaps(swaps); !on_disk.empty()) {
    return Status::FailedPrecondition("swap on " + on_disk.front() +
                                      " writes to a disk past any filesystem freeze: its disk would not match RAM");
  }
  FE_ASSIGN_OR_RETURN(const std::string mounts, ReadText(mounts_path_));
  std::set<dev_t> seen;  // a filesystem mounted twice (a bind mount) is frozen once
  std::vector<std::string> frozen;
  for (const std::string& mount_point : FreezableMounts(mounts)) {
    UniqueFd fd(::open(mount_point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    struct stat info {};
    Status status = Status::Ok();
    if (!fd || ::fstat(fd.get(), &info) != 0) {
      status = Status::FromErrno(errno, "open", mount_point);
    } else if (!seen.insert(info.st_dev).second) {
      continue;
    } else if (::ioctl(fd.get(), FIFREEZE, 0) != 0) {
      status = Status::FromErrno(errno, "FIFREEZE", mount_point);
    }
    if (!status.ok()) {
      std::vector<std::string> thawed;
      (void)ThawLocked(thawed);
      return status;
    }
    frozen_.push_back(Frozen{mount_point, std::move(fd)});
    frozen.push_back(mount_point);
  }
  // A guest with nothing to freeze is "frozen" all the same: Thaw reports whether the deadline passed.
  if (frozen_.empty()) frozen_.push_back(Frozen{"", UniqueFd()});
  deadline_ = std::chrono::steady_clock::now() + thaw_after;
  lock.unlock();
  changed_.notify_all();
  return frozen;
}

Result<ThawOutcome> SystemFilesystemFreezer::Thaw() {
  std::lock_guard lock(mutex_);
  ThawOutcome outcome;
  outcome.held = !frozen_.empty();
  FE_RETURN_IF_ERROR(ThawLocked(outcome.thawed));
  return outcome;
}

Status SystemFilesystemFreezer::ThawLocked(std::vector<std::string>& thawed) {
  Status first = Status::Ok();
  for (auto it = frozen_.rbegin(); it != frozen_.rend(); ++it) {
    if (!it->fd) continue;
    if (::ioctl(it->fd.get(), FITHAW, 0) != 0 && first.ok()) {
      first = Status::FromErrno(errno, "FITHAW", it->mount_point);
      continue;
    }
    thawed.push_back(it->mount_point);
  }
  frozen_.clear();
  return first;
}

void SystemFilesystemFreezer::Watch() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (frozen_.empty()) {
      changed_.wait(lock);
      continue;
    }
    if (std::chrono::steady_clock::now() < deadline_) {
      changed_.wait_until(lock, deadline_);
      continue;
    }
    std::vector<std::string> thawed;
    Status status = ThawLocked(thawed);
    Log("freeze deadline passed: thawed " + std::to_string(thawed.size()) + " filesystem(s)" +
        (status.ok() ? "" : "; " + status.message()));
  }
}

}  // namespace fe::hypervisor::forkagent
