#include "engine/vm/cpu_throttle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "base/unique_fd.h"

namespace fe::engine::vm {
namespace {

struct CpuCgroup {
  bool v2 = false;
  std::string dir;  // absolute: the mount point joined with the process's cgroup path
};

std::vector<std::string> Split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, separator);) parts.push_back(part);
  return parts;
}

bool HasToken(const std::string& list, const std::string& token) {
  for (const std::string& part : Split(list, ',')) {
    if (part == token) return true;
  }
  return false;
}

struct Mount {
  std::string root;   // the hierarchy's path mounted there
  std::string point;  // where
};

// The cgroup v1 mount holding the cpu controller (v2 = false), or the cgroup2 mount (v2 = true).
std::optional<Mount> FindMount(bool v2) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  for (std::string line; std::getline(mountinfo, line);) {
    const size_t separator = line.find(" - ");
    if (separator == std::string::npos) continue;
    const std::vector<std::string> before = Split(line.substr(0, separator), ' ');
    const std::vector<std::string> after = Split(line.substr(separator + 3), ' ');
    if (before.size() < 5 || after.size() < 3) continue;
    const bool matches = v2 ? after[0] == "cgroup2" : after[0] == "cgroup" && HasToken(after[2], "cpu");
    if (matches) return Mount{before[3], before[4]};
  }
  return std::nullopt;
}

Status WriteText(const std::string& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Status::FromErrno(errno, "open", path);
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return Status::FromErrno(errno, "write '" + text + "' to", path);
  }
  return Status::Ok();
}

std::string ReadText(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// Where `pid`'s cpu cgroup is, preferring a v1 cpu hierarchy (it needs no controller enabling).
Result<CpuCgroup> CpuCgroupOf(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid) + "/cgroup";
  std::ifstream cgroups(proc);
  if (!cgroups) return Status::NotFound(proc + ": no such process");
  std::optional<std::string> v1_path, v2_path;
  for (std::string line; std::getline(cgroups, line);) {
    const size_t first = line.find(':');
    const size_t second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (line.compare(0, first, "0") == 0 && controllers.empty()) v2_path = path;
    if (HasToken(controllers, "cpu")) v1_path = path;
  }
  auto join = [](const Mount& mount, const std::string& path) {
    // Inside a cgroup namespace or a bind mount the mount shows a subtree: paths are relative to it.
    std::string relative = path;
    if (mount.root != "/" && relative.compare(0, mount.root.size(), mount.root) == 0) {
      relative = relative.substr(mount.root.size());
    }
    return mount.point + (relative == "/" ? "" : relative);
  };
  if (v1_path) {
    if (std::optional<Mount> mount = FindMount(false)) return CpuCgroup{false, join(*mount, *v1_path)};
  }
  if (v2_path) {
    if (std::optional<Mount> mount = FindMount(true)) return CpuCgroup{true, join(*mount, *v2_path)};
  }
  return Status::Unsupported("throttling pid " + std::to_string(pid) + ": no cpu cgroup controller is mounted");
}

std::string ChildName(pid_t pid) { return "forkengine-throttle-" + std::to_string(pid); }

class CgroupThrottle final : public CpuThrottle {
 public:
  CgroupThrottle(pid_t pid, CpuCgroup cgroup) : pid_(pid), cgroup_(std::move(cgroup)) {}
  ~CgroupThrottle() override { (void)Release(); }

  Status Set(int percent) override {
    if (percent < 1 || percent > 99) return Status::InvalidArgument("throttle: percent must be 1..99");
    const int64_t period_us = std::chrono::microseconds(kThrottlePeriod).count();
    const int64_t quota_us = std::max<int64_t>(1000, period_us * (100 - percent) / 100);
    const std::string child = cgroup_.dir + "/" + ChildName(pid_);
    if (!applied_) {
      if (::mkdir(child.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(errno, "mkdir", child);
      created_ = true;
    }
    if (cgroup_.v2) {
      FE_RETURN_IF_ERROR(WriteText(child + "/cpu.max", std::to_string(quota_us) + " " + std::to_string(period_us)));
    } else {
      FE_RETURN_IF_ERROR(WriteText(child + "/cpu.cfs_period_us", std::to_string(period_us)));
      FE_RETURN_IF_ERROR(WriteText(child + "/cpu.cfs_quota_us", std::to_string(quota_us)));
    }
    if (!applied_) {
      FE_RETURN_IF_ERROR(WriteText(child + "/cgroup.procs", std::to_string(pid_)));
      applied_ = true;
    }
    return Status::Ok();
  }

  Status Release() override {
    Status status = Status::Ok();
    const std::string child = cgroup_.dir + "/" + ChildName(pid_);
    // A process that has exited has left the child already (ESRCH).
    if (applied_) {
      Status moved = WriteText(cgroup_.dir + "/cgroup.procs", std::to_string(pid_));
      if (!moved.ok() && ::access(("/proc/" + std::to_string(pid_)).c_str(), F_OK) == 0) status = moved;
      applied_ = false;
    }
    if (created_ && status.ok()) {
      if (::rmdir(child.c_str()) != 0 && errno != ENOENT) status = Status::FromErrno(errno, "rmdir", child);
      created_ = false;
    }
    return status;
  }

 private:
  pid_t pid_;
  CpuCgroup cgroup_;
  bool created_ = false;
  bool applied_ = false;
};

}  // namespace

Result<std::unique_ptr<CpuThrottle>> ThrottleThroughCgroup(pid_t pid) {
  Result<CpuCgroup> cgroup = CpuCgroupOf(pid);
  if (!cgroup.ok()) return cgroup.status();
  if (cgroup->v2) {
    // The child needs the cpu controller, which v2 enables from the parent only where the parent holds no
    // processes of its own (or is the root).
    const std::string subtree = cgroup->dir + "/cgroup.subtree_control";
    std::istringstream enabled(ReadText(subtree));
    bool has_cpu = false;
    for (std::string word; enabled >> word;) has_cpu = has_cpu || word == "cpu";
    if (!has_cpu) {
      Status status = WriteText(subtree, "+cpu");
      if (!status.ok()) {
        return Status::Unsupported("throttling pid " + std::to_string(pid) +
                                   ": cannot enable the cpu controller below " + cgroup->dir + ": " + status.message());
      }
    }
  }
  return std::unique_ptr<CpuThrottle>(std::make_unique<CgroupThrottle>(pid, std::move(*cgroup)));
}

Status ReleaseLeftoverThrottle(pid_t pid) {
  Result<CpuCgroup> cgroup = CpuCgroupOf(pid);
  if (!cgroup.ok()) return cgroup.status().code() == ErrorCode::kUnsupported ? Status::Ok() : cgroup.status();
  std::string suffix = "/";
  suffix += ChildName(pid);
  const std::string& dir = cgroup->dir;
  if (dir.size() <= suffix.size() || dir.compare(dir.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return Status::Ok();
  }
  const std::string parent = dir.substr(0, dir.size() - suffix.size());
  FE_RETURN_IF_ERROR(WriteText(parent + "/cgroup.procs", std::to_string(pid)));
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) return Status::FromErrno(errno, "rmdir", dir);
  return Status::Ok();
}

}  // namespace fe::engine::vm
