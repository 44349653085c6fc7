#include "tests/guest/guest_runner.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>

#include "base/process.h"
#include "tests/guest/initramfs.h"

namespace fe::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr char kQemu[] = "qemu-system-x86_64";
constexpr char kBusybox[] = "/bin/busybox";
constexpr char kMarker[] = "FE-GUEST-EXIT:";

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

std::optional<std::string> FindInPath(const std::string& program) {
  std::stringstream path(Env("PATH").empty() ? "/usr/bin:/bin" : Env("PATH"));
  std::string dir;
  while (std::getline(path, dir, ':')) {
    std::string candidate = dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// The newest /boot/vmlinuz-<version> that has a module tree, or FE_GUEST_KERNEL.
std::string FindKernel() {
  if (!Env("FE_GUEST_KERNEL").empty()) return Env("FE_GUEST_KERNEL");
  std::string best;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator("/boot", error)) {
    const std::string name = entry.path().filename();
    if (name.rfind("vmlinuz-", 0) != 0) continue;
    if (!fs::exists("/lib/modules/" + name.substr(8) + "/modules.dep")) continue;
    if (best.empty() || ::strverscmp(name.c_str(), fs::path(best).filename().c_str()) > 0) best = entry.path();
  }
  return best;
}

std::string ModuleTree(const std::string& kernel) {
  if (!Env("FE_GUEST_MODULES").empty()) return Env("FE_GUEST_MODULES");
  const std::string name = fs::path(kernel).filename();
  return name.rfind("vmlinuz-", 0) == 0 ? "/lib/modules/" + name.substr(8) : "";
}

std::string Canonical(std::string module) {
  for (char& c : module) c = c == '-' ? '_' : c;
  return module;
}

// Module name (canonical) -> path relative to the tree, from modules.dep; built-in ones map to "".
Result<std::map<std::string, std::string>> ReadModuleIndex(const std::string& tree) {
  std::map<std::string, std::string> index;
  for (const char* list : {"modules.builtin", "modules.dep"}) {
    std::ifstream in(tree + "/" + list);
    if (!in) return Status::FromErrno(ENOENT, "read module list", tree + "/" + list);
    std::string line;
    while (std::getline(in, line)) {
      std::string path = line.substr(0, line.find(':'));
      std::string base = fs::path(path).filename();
      base = base.substr(0, base.find(".ko"));
      index[Canonical(base)] = std::string(list) == "modules.builtin" ? "" : path;
    }
  }
  return index;
}

// Absolute paths of the shared libraries (and the loader) `ldd` lists for `binary`.
Result<std::vector<std::string>> SharedLibraries(const std::string& binary) {
  Result<ProcessResult> ldd = RunProcess({"ldd", binary});
  if (!ldd.ok()) return ldd.status();
  std::vector<std::string> libraries;
  if (ldd->output.find("not a dynamic executable") != std::string::npos) return libraries;
  if (ldd->exit_code != 0 || ldd->output.find("not found") != std::string::npos) {
    return Status::NotFound("ldd " + binary + " failed: " + ldd->output);
  }
  std::istringstream lines(ldd->output);
  std::string line;
  while (std::getline(lines, line)) {
    size_t arrow = line.find("=> ");
    size_t start = arrow != std::string::npos ? arrow + 3 : line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] != '/') continue;  // linux-vdso.so.1
    libraries.push_back(line.substr(start, line.find(' ', start) - start));
  }
  return libraries;
}

std::string Nonce() {
  std::random_device random;
  char buffer[17];
  std::snprintf(buffer, sizeof buffer, "%08x%08x", random(), random());
  return buffer;
}

std::string InitScript(const std::vector<std::pair<std::string, std::string>>& modules, const std::string& nonce) {
  std::string script =
      InitScriptPreamble() + "report() { echo \"" + std::string(kMarker) + nonce + ":$1\"; sync; poweroff -f; }\n";
  for (const auto& [name, path] : modules) {
    script += "insmod " + path + " || { echo \"FE-GUEST: insmod " + name + " failed\"; report 125; }\n";
  }
  script +=
      "echo \"FE-GUEST-READY uptime $(cut -d' ' -f1 /proc/uptime) s\"\n"
      "cd /tmp\n"
      "sh /fe-guest/command.sh\n"
      "report $?\n";
  return script;
}

Result<GuestResult> Boot(const GuestSpec& spec, const std::string& kernel, const std::string& initramfs,
                         const std::string& serial_log, const std::string& nonce) {
  std::optional<std::string> qemu = FindInPath(kQemu);
  if (!qemu) return Status::NotFound(std::string(kQemu) + " is not in PATH");
  const Clock::time_point start = Clock::now();
  // `timeout` stops QEMU (and so the guest) when the guest hangs; the guest normally powers off.
  std::vector<std::string> argv = {"timeout",
                                   "--kill-after=5",
                                   std::to_string(spec.timeout.count()),
                                   *qemu,
                                   "-accel",
                                   "tcg",
                                   "-m",
                                   std::to_string(spec.memory_mib),
                                   "-smp",
                                   "1",
                                   "-no-reboot",
                                   "-nodefaults",
                                   "-display",
                                   "none",
                                   "-serial",
                                   "file:" + serial_log,
                                   "-kernel",
                                   kernel,
                                   "-initrd",
                                   initramfs,
                                   "-append",
                                   "console=ttyS0 panic=-1 " + spec.kernel_args};
  argv.insert(argv.end(), spec.qemu_args.begin(), spec.qemu_args.end());
  Result<ProcessResult> run = RunProcess(argv);
  if (!run.ok()) return run.status();
  GuestResult result;
  result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  result.qemu_output = run->output;
  // 124: QEMU ended on SIGTERM at the timeout; 137 or SIGKILL: it had to be killed 5 s later.
  result.timed_out = run->exit_code == 124 || run->exit_code == 128 + SIGKILL || run->signal == SIGKILL;
  std::ifstream in(serial_log, std::ios::binary);
  result.serial.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  const std::string marker = kMarker + nonce + ":";
  size_t at = result.serial.rfind(marker);
  if (at != std::string::npos) result.exit_code = std::atoi(result.serial.c_str() + at + marker.size());
  return result;
}

}  // namespace

std::string GuestResult::Summary() const {
  std::string summary = timed_out ? "guest timed out" : "guest exit status " + std::to_string(exit_code);
  return summary + " after " + std::to_string(elapsed.count()) + " ms";
}

std::string GuestUnavailableReason() {
  if (!FindInPath(kQemu)) return std::string(kQemu) + " is not installed (package qemu-system-x86)";
  if (!FindInPath("timeout")) return "timeout (coreutils) is not installed";
  const std::string kernel = FindKernel();
  if (kernel.empty()) return "no /boot/vmlinuz-* with a module tree (package linux-image-amd64)";
  if (::access(kernel.c_str(), R_OK) != 0) return "kernel image " + kernel + " is not readable";
  if (!fs::exists(ModuleTree(kernel) + "/modules.dep")) return "no module tree for " + kernel;
  if (::access(kBusybox, X_OK) != 0) return std::string(kBusybox) + " is missing (package busybox-static)";
  return "";
}

std::string GuestKernel() { return FindKernel(); }

Result<std::vector<std::string>> AddGuestModules(InitramfsBuilder& image, const std::vector<std::string>& modules) {
  const std::string tree = ModuleTree(FindKernel());
  Result<std::map<std::string, std::string>> index = ReadModuleIndex(tree);
  if (!index.ok()) return index.status();
  std::vector<std::string> guest_paths;
  for (const std::string& module : modules) {
    auto it = index->find(Canonical(module));
    if (it == index->end()) return Status::NotFound("module " + module + " is not in " + tree);
    if (it->second.empty()) continue;  // built into this kernel
    if (it->second.size() < 3 || it->second.substr(it->second.size() - 3) != ".ko") {
      return Status::Unsupported("module " + it->second + " is compressed; busybox insmod needs .ko");
    }
    const std::string guest_path = "/fe-guest/modules/" + fs::path(it->second).filename().string();
    image.AddFile(guest_path, tree + "/" + it->second, 0644);
    guest_paths.push_back(guest_path);
  }
  return guest_paths;
}

Status AddGuestFiles(InitramfsBuilder& image, const std::vector<GuestFile>& files, const std::string& work_dir) {
  for (size_t i = 0; i < files.size(); ++i) {
    const GuestFile& file = files[i];
    if (file.strip_debug) {
      if (work_dir.empty()) return Status::InvalidArgument(file.host_path + ": stripping needs a work directory");
      const std::string stripped = work_dir + "/stripped-" + std::to_string(i);
      FE_RETURN_IF_ERROR(RunProcessChecked({"objcopy", "--strip-debug", file.host_path, stripped}));
      image.AddFile(file.guest_path, stripped, 0755);
    } else {
      image.AddFile(file.guest_path, file.host_path, 0755);
    }
    if (!file.with_libraries) continue;
    Result<std::vector<std::string>> libraries = SharedLibraries(file.host_path);
    if (!libraries.ok()) return libraries.status();
    for (const std::string& library : *libraries) image.AddFile(library, library, 0755);
  }
  return Status::Ok();
}

Result<GuestResult> RunGuest(const GuestSpec& spec) {
  if (std::string why = GuestUnavailableReason(); !why.empty()) return Status::Unsupported(why);
  const std::string kernel = FindKernel();

  InitramfsBuilder image;
  image.AddFile(kBusybox, kBusybox, 0755);
  Result<std::vector<std::string>> module_paths = AddGuestModules(image, spec.modules);
  if (!module_paths.ok()) return module_paths.status();
  std::vector<std::pair<std::string, std::string>> modules;  // name, guest path
  for (const std::string& path : *module_paths) modules.emplace_back(fs::path(path).stem().string(), path);
  char dir_template[] = "/tmp/fe-guest-XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) return Status::FromErrno(errno, "mkdtemp", dir_template);
  const std::string dir = dir_template;
  const std::string nonce = Nonce();
  image.AddContent("/init", InitScript(modules, nonce), 0755);
  image.AddContent("/fe-guest/command.sh", spec.command + "\n", 0755);
  Status written = AddGuestFiles(image, spec.files, dir);
  if (written.ok()) written = image.Write(dir + "/initramfs.cpio");
  Result<GuestResult> result = written.ok() ? Boot(spec, kernel, dir + "/initramfs.cpio", dir + "/serial.log", nonce)
                                            : Result<GuestResult>(written);
  std::error_code ignored;
  fs::remove_all(dir, ignored);
  return result;
}

std::string InitScriptPreamble() {
  return "#!/bin/busybox sh\n"
         "B=/bin/busybox\n"
         "$B mkdir -p /proc /sys /dev /tmp /run /sbin /usr/bin /usr/sbin\n"
         "$B mount -t proc proc /proc\n"
         "$B mount -t sysfs sysfs /sys\n"
         "$B mount -t devtmpfs devtmpfs /dev\n"
         "$B mount -t tmpfs tmpfs /tmp\n"
         "$B mount -t tmpfs tmpfs /run\n"
         "$B --install -s\n"
         "export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/tmp\n";
}

}  // namespace fe::test
