#include "tests/support/scratch.h"

#include <linux/magic.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "tests/support/file_util.h"
#include "tests/support/temp_dir.h"

namespace fe::test {
namespace {

using storage::loop::LoopFilesystem;
using storage::loop::LoopFilesystemOptions;
using storage::loop::LoopFilesystemType;

constexpr uint64_t kImageBytes = 2 * kGiB;  // sparse: costs only what the tests write

// Mount points the fatal-signal handler detaches and images it deletes, as plain chars
// (async-signal-safe to read).
constexpr int kMaxMounts = 3;
char g_mount_points[kMaxMounts][512];
char g_images[kMaxMounts][512];
struct sigaction g_previous[NSIG];
constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTERM, SIGINT, SIGHUP};

void OnFatalSignal(int sig) {
  for (int i = 0; i < kMaxMounts; ++i) {
    if (g_mount_points[i][0] == '\0') continue;
    ::umount2(g_mount_points[i], MNT_DETACH);  // autoclear frees the loop device
    ::rmdir(g_mount_points[i]);
    ::unlink(g_images[i]);
  }
  ::sigaction(sig, &g_previous[sig], nullptr);
  // A fault re-executes the faulting instruction and reaches the previous handler with its real
  // siginfo; other signals are delivered again.
  if (sig != SIGSEGV && sig != SIGBUS && sig != SIGILL && sig != SIGFPE) ::raise(sig);
}

void InstallSignalHandlers() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  for (int sig : kFatalSignals) {
    struct sigaction action;
    std::memset(&action, 0, sizeof action);
    action.sa_handler = OnFatalSignal;
    sigemptyset(&action.sa_mask);
    ::sigaction(sig, &action, &g_previous[sig]);
  }
}

void RegisterMount(int slot, const std::string& mount_point, const std::string& image) {
  std::strncpy(g_images[slot], image.c_str(), sizeof g_images[slot] - 1);
  std::strncpy(g_mount_points[slot], mount_point.c_str(), sizeof g_mount_points[slot] - 1);
}
void UnregisterMount(int slot) { g_mount_points[slot][0] = '\0'; }

// Unmounts what test processes that no longer exist left mounted under /tmp/forkengine-test-<pid>-*,
// and removes their directories.
void ReapStaleMounts() {
  const std::string prefix = "/tmp/" + std::string(kTempPrefix);
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  std::vector<std::string> stale;
  std::set<std::string> dirs;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string device, mount_point;
    fields >> device >> mount_point;
    if (mount_point.rfind(prefix, 0) != 0) continue;
    pid_t pid = static_cast<pid_t>(std::atol(mount_point.c_str() + prefix.size()));
    if (pid <= 0 || pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    stale.push_back(mount_point);
    dirs.insert(mount_point.substr(0, mount_point.find('/', prefix.size())));
  }
  for (auto it = stale.rbegin(); it != stale.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
  for (const std::string& dir : dirs) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  // What a fatal signal left: its handler unmounted and deleted the images, leaving empty
  // directories. rmdir removes nothing else.
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/tmp", error)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(kTempPrefix, 0) != 0) continue;
    pid_t pid = static_cast<pid_t>(std::atol(name.c_str() + kTempPrefix.size()));
    if (pid <= 0 || pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    for (const char* sub : {"/xfs", "/btrfs", "/ext4", ""}) ::rmdir((entry.path().string() + sub).c_str());
  }
}

struct Mounted {
  std::optional<storage::loop::LoopFilesystem> fs;
  std::string root;  // where the tests' directories go
};

class State {
 public:
  ~State() { Release(/*from_test=*/false); }

  ScratchResult Root(ScratchFs kind) {
    ScratchResult result;
    if (Status status = EnsureTemp(); !status.ok()) {
      result.status = status;
      return result;
    }
    Mounted& slot = mounted_[static_cast<int>(kind)];
    if (slot.root.empty()) {
      if (kind == ScratchFs::kExt4 && HostIsExt4()) {
        slot.root = temp_->Sub("ext4");
        if (::mkdir(slot.root.c_str(), 0755) != 0) {
          result.status = Status::FromErrno(errno, "mkdir", slot.root);
          slot.root.clear();
          return result;
        }
      } else {
        std::string why;
        if (!storage::loop::LoopFilesystem::Available(&why)) {
          result.skip = "needs a loop-mounted " + std::string(ScratchFsName(kind)) + ": " + why;
          return result;
        }
        if (Status status = Mount(kind, &slot); !status.ok()) {
          result.status = status;
          return result;
        }
      }
    }
    result.path = slot.root;
    return result;
  }

  ScratchResult Dir(ScratchFs kind) {
    ScratchResult result = Root(kind);
    if (!result.skip.empty() || !result.status.ok()) return result;
    std::string dir = result.path + "/" + CurrentTestName();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);  // a repeated test (--gtest_repeat) starts empty
    if (::mkdir(dir.c_str(), 0755) != 0) {
      result.status = Status::FromErrno(errno, "mkdir", dir);
      return result;
    }
    result.path = dir;
    return result;
  }

  ScratchResult HostDir() {
    ScratchResult result;
    result.status = EnsureTemp();
    if (result.status.ok()) result.path = temp_->path();
    return result;
  }

  // `from_test`: report failures to GoogleTest (not possible any more at process exit).
  void Release(bool from_test) {
    for (int i = kMaxMounts - 1; i >= 0; --i) {
      Mounted& slot = mounted_[i];
      if (slot.fs) {
        Status status = slot.fs->Close();
        if (!status.ok() && from_test) {
          ADD_FAILURE() << "tearing down scratch filesystem: " << status.ToString();
        } else if (!status.ok()) {
          std::fprintf(stderr, "tearing down scratch filesystem: %s\n", status.ToString().c_str());
        }
        slot.fs.reset();
        UnregisterMount(i);
      }
      slot.root.clear();
    }
    temp_.reset();
  }

 private:
  Status EnsureTemp() {
    if (temp_) return Status::Ok();
    ReapStaleMounts();
    Result<TempDir> temp = TempDir::Create();
    if (!temp.ok()) return temp.status();
    temp_.emplace(std::move(*temp));
    return Status::Ok();
  }

  bool HostIsExt4() const {
    struct statfs fs;
    return ::statfs(temp_->path().c_str(), &fs) == 0 && fs.f_type == EXT4_SUPER_MAGIC;
  }

  Status Mount(ScratchFs kind, Mounted* slot) {
    InstallSignalHandlers();
    std::string name(ScratchFsName(kind));
    storage::loop::LoopFilesystemOptions options;
    options.type = kind == ScratchFs::kXfs     ? storage::loop::LoopFilesystemType::kXfs
                   : kind == ScratchFs::kBtrfs ? storage::loop::LoopFilesystemType::kBtrfs
                                               : storage::loop::LoopFilesystemType::kExt4;
    options.image_path = temp_->Sub(name + ".img");
    options.size_bytes = kImageBytes;
    options.mount_point = temp_->Sub(name);
    RegisterMount(static_cast<int>(kind), options.mount_point, options.image_path);
    Result<storage::loop::LoopFilesystem> fs = storage::loop::LoopFilesystem::Open(options);
    if (!fs.ok()) {
      UnregisterMount(static_cast<int>(kind));
      return fs.status().Annotate("mounting scratch " + name);
    }
    slot->fs.emplace(std::move(*fs));
    slot->root = options.mount_point;
    return Status::Ok();
  }

  std::optional<TempDir> temp_;
  Mounted mounted_[kMaxMounts];
};

State& GetState() {
  static State state;
  return state;
}

}  // namespace

std::string_view ScratchFsName(ScratchFs fs) {
  switch (fs) {
    case ScratchFs::kXfs: return "xfs";
    case ScratchFs::kBtrfs: return "btrfs";
    case ScratchFs::kExt4: return "ext4";
  }
  return "unknown";
}

void PrintTo(ScratchFs fs, std::ostream* os) { *os << ScratchFsName(fs); }

ScratchResult Scratch::Dir(ScratchFs fs) { return GetState().Dir(fs); }
ScratchResult Scratch::Root(ScratchFs fs) { return GetState().Root(fs); }
ScratchResult Scratch::HostDir() { return GetState().HostDir(); }
void Scratch::Release() { GetState().Release(/*from_test=*/true); }

std::string CurrentTestName() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info == nullptr) return "no-test";
  std::string name = std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  return name;
}

}  // namespace fe::test
