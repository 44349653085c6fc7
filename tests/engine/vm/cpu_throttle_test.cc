#include "engine/vm/cpu_throttle.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

namespace fe::engine::vm {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// The cpu line of /proc/<pid>/cgroup (v1 "N:cpu:/path", else v2's "0::/path"): the path.
std::string CpuCgroupPath(pid_t pid) {
  std::istringstream lines(ReadFile("/proc/" + std::to_string(pid) + "/cgroup"));
  std::string v2;
  for (std::string line; std::getline(lines, line);) {
    const size_t first = line.find(':'), second = line.find(':', first + 1);
    const std::string controllers = line.substr(first + 1, second - first - 1);
    std::istringstream list(controllers);
    for (std::string controller; std::getline(list, controller, ',');) {
      if (controller == "cpu") return line.substr(second + 1);
    }
    if (controllers.empty()) v2 = line.substr(second + 1);
  }
  return v2;
}

class BusyChild {
 public:
  BusyChild() {
    pid_ = ::fork();
    if (pid_ == 0) {
      volatile uint64_t spin = 0;
      for (;;) spin = spin + 1;
    }
  }
  ~BusyChild() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

TEST(CpuThrottleTest, ThrottledProcessRunsInAQuotaCgroupOfItsOwnAndGoesBackOnRelease) {
  BusyChild child;
  const std::string before = CpuCgroupPath(child.pid());
  Result<std::unique_ptr<CpuThrottle>> throttle = ThrottleThroughCgroup(child.pid());
  if (!throttle.ok() && throttle.status().code() == ErrorCode::kUnsupported) {
    GTEST_SKIP() << throttle.status().ToString();
  }
  ASSERT_TRUE(throttle.ok()) << throttle.status().ToString();
  ASSERT_TRUE((*throttle)->Set(90).ok());
  const std::string throttled = CpuCgroupPath(child.pid());
  const std::string name = "forkengine-throttle-" + std::to_string(child.pid());
  EXPECT_EQ(throttled, (before == "/" ? "" : before) + "/" + name);

  // The kernel enforces it: a busy process is throttled within a few periods.
  std::this_thread::sleep_for(kThrottlePeriod * 10);
  ASSERT_TRUE((*throttle)->Set(95).ok());  // a later step replaces the quota in place
  std::this_thread::sleep_for(kThrottlePeriod * 5);
  EXPECT_EQ(CpuCgroupPath(child.pid()), throttled);

  ASSERT_TRUE((*throttle)->Release().ok());
  EXPECT_EQ(CpuCgroupPath(child.pid()), before);
  EXPECT_TRUE((*throttle)->Release().ok()) << "Release is idempotent";
}

TEST(CpuThrottleTest, QuotaIsEnforcedOnABusyProcess) {
  BusyChild child;
  Result<std::unique_ptr<CpuThrottle>> throttle = ThrottleThroughCgroup(child.pid());
  if (!throttle.ok() && throttle.status().code() == ErrorCode::kUnsupported) {
    GTEST_SKIP() << throttle.status().ToString();
  }
  ASSERT_TRUE(throttle.ok()) << throttle.status().ToString();
  ASSERT_TRUE((*throttle)->Set(90).ok());
  std::this_thread::sleep_for(kThrottlePeriod * 10);
  // cpu.stat of the child cgroup: nr_throttled counts the periods the quota ran out.
  std::string mount;
  for (const char* candidate : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup"}) {
    struct stat info {};
    const std::string dir = std::string(candidate) + CpuCgroupPath(child.pid());
    if (::stat((dir + "/cpu.stat").c_str(), &info) == 0) mount = dir;
    if (!mount.empty()) break;
  }
  ASSERT_FALSE(mount.empty()) << "no cpu.stat for " << CpuCgroupPath(child.pid());
  std::istringstream stat(ReadFile(mount + "/cpu.stat"));
  uint64_t throttled_periods = 0;
  for (std::string key; stat >> key;) {
    uint64_t value = 0;
    stat >> value;
    if (key == "nr_throttled") throttled_periods = value;
  }
  EXPECT_GT(throttled_periods, 0u);
}

TEST(CpuThrottleTest, ALeftoverThrottleOfAKilledDaemonIsReleased) {
  BusyChild child;
  Result<std::unique_ptr<CpuThrottle>> probe = ThrottleThroughCgroup(child.pid());
  if (!probe.ok() && probe.status().code() == ErrorCode::kUnsupported) GTEST_SKIP() << probe.status().ToString();
  ASSERT_TRUE(probe.ok());
  probe->reset();  // never applied: nothing to undo
  const std::string before = CpuCgroupPath(child.pid());
  // What a forkd killed while throttling leaves: the process in the throttle child.
  std::string base;
  for (const char* candidate : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup"}) {
    struct stat info {};
    const std::string dir = std::string(candidate) + (before == "/" ? "" : before);
    if (::stat((dir + "/cgroup.procs").c_str(), &info) == 0 && ::stat((dir + "/cpu.shares").c_str(), &info) == 0) {
      base = dir;
      break;
    }
    if (::stat((dir + "/cgroup.procs").c_str(), &info) == 0 && base.empty()) base = dir;
  }
  ASSERT_FALSE(base.empty());
  const std::string child_dir = base + "/forkengine-throttle-" + std::to_string(child.pid());
  ASSERT_EQ(::mkdir(child_dir.c_str(), 0755), 0) << child_dir;
  {
    std::ofstream procs(child_dir + "/cgroup.procs");
    procs << child.pid();
  }
  ASSERT_NE(CpuCgroupPath(child.pid()), before);

  ASSERT_TRUE(ReleaseLeftoverThrottle(child.pid()).ok());
  EXPECT_EQ(CpuCgroupPath(child.pid()), before);
  struct stat info {};
  EXPECT_NE(::stat(child_dir.c_str(), &info), 0) << "the child cgroup is removed";
  EXPECT_TRUE(ReleaseLeftoverThrottle(child.pid()).ok()) << "nothing left: Ok";
}

}  // namespace
}  // namespace fe::engine::vm
