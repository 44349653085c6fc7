#include "tests/hypervisor/qemu/qemu_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "base/process.h"
#include "tests/guest/guest_runner.h"
#include "tests/guest/initramfs.h"
#include "tests/support/file_util.h"

extern char** environ;

namespace fe::hypervisor::qemu::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string Kernel() {
  if (const char* kernel = std::getenv("FE_GUEST_KERNEL"); kernel != nullptr && *kernel != '\0') return kernel;
  std::string best;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator("/boot", error)) {
    const std::string name = entry.path().filename();
    if (name.rfind("vmlinuz-", 0) == 0 &&
        (best.empty() || ::strverscmp(name.c_str(), fs::path(best).filename().c_str()) > 0)) {
      best = entry.path();
    }
  }
  return best;
}

// Prints a tick every 200 ms, forever; the VM is stopped from outside.
constexpr char kTickerInit[] =
    "#!/bin/busybox sh\n"
    "i=0\n"
    "while true; do\n"
    "  echo \"tick $i\"\n"
    "  i=$((i+1))\n"
    "  /bin/busybox usleep 200000\n"
    "done\n";

}  // namespace

Result<ChildProcess> ChildProcess::Start(const std::vector<std::string>& argv, const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ::posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int err = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return Status::FromErrno(err, "spawn", argv[0]);
  return ChildProcess(pid, log_path);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), log_path_(std::move(other.log_path_)), status_(other.status_) {}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

std::optional<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  if (status_ || pid_ <= 0) return status_;
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return status_;
    }
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string ChildProcess::Log() const {
  Result<std::string> log = fe::test::ReadFile(log_path_);
  return log.ok() ? *log : "(no log: " + log.status().ToString() + ")";
}

std::string QemuUnavailableReason() {
  Result<ProcessResult> version = RunProcess({"qemu-system-x86_64", "--version"});
  if (!version.ok() || version->exit_code != 0) return "qemu-system-x86_64 is not installed (package qemu-system-x86)";
  return "";
}

std::string GuestUnavailableReason() {
  if (std::string why = QemuUnavailableReason(); !why.empty()) return why;
  return fe::test::GuestUnavailableReason();
}

Config MachineNoneConfig(const std::string& dir) {
  Config config;
  config.machine = "none";
  config.memory_mib = 64;
  config.qmp_socket = dir + "/qmp.sock";
  return config;
}

Result<Config> MakeTickerInstance(const std::string& dir, uint64_t memory_mib) {
  fe::test::InitramfsBuilder image;
  image.AddFile("/bin/busybox", "/bin/busybox", 0755);
  image.AddContent("/init", kTickerInit, 0755);
  FE_RETURN_IF_ERROR(image.Write(dir + "/initrd.cpio"));
  FE_RETURN_IF_ERROR(fe::test::MakeSparseFile(dir + "/disk.raw", 1 << 20, {}, 0));

  Config config;
  config.machine = "pc";
  config.memory_mib = memory_mib;
  config.kernel = Kernel();
  config.initrd = dir + "/initrd.cpio";
  config.append = "console=ttyS0 panic=-1 quiet";
  config.drives.push_back(Drive{"disk", dir + "/disk.raw", "raw", "virtio-blk-pci", false, Json::object()});
  config.chardevs.push_back(Chardev{"serial0", "file", dir + "/serial.log", "", Json::object()});
  config.serial = "serial0";
  // The identity handoff's channel (hypervisor/identity_handoff.h); this guest does not use it.
  config.chardevs.push_back(
      Chardev{"identity", "socket", dir + "/identity.sock", "org.forkengine.identity.0", Json::object()});
  config.qmp_socket = dir + "/qmp.sock";
  config.vmgenid = "3a6f1c2e-0b7d-4e59-9c41-2f8d6a0b5e17";
  return config;
}

std::vector<int> Ticks(const std::string& serial_log) {
  std::vector<int> ticks;
  std::ifstream in(serial_log);
  std::string line;
  // Lines are exactly "tick N", with a '\r' where the serial console adds one.
  constexpr std::string_view kPrefix = "tick ";
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline yet: the line may still grow
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.starts_with(kPrefix) || line.size() == kPrefix.size()) continue;
    std::string_view digits = std::string_view(line).substr(kPrefix.size());
    if (digits.find_first_not_of("0123456789") != std::string_view::npos || digits.size() > 9) continue;
    ticks.push_back(std::stoi(std::string(digits)));
  }
  return ticks;
}

bool WaitForTick(const std::string& path, int at_least, std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    std::vector<int> ticks = Ticks(path);
    if (!ticks.empty() && ticks.back() >= at_least) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace fe::hypervisor::qemu::test
