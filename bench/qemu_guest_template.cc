#include "bench/qemu_guest_template.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/process.h"
#include "hypervisor/qemu/qemu_config.h"

namespace fe::bench {
namespace {

namespace fs = std::filesystem;
namespace qemu = hypervisor::qemu;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kBootTimeout = 180s;

}  // namespace

Status MakeQemuTemplate(const std::string& guest_dir, const std::string& dir, uint64_t memory_mib, bool shared_ram) {
  Result<qemu::Config> config = qemu::ReadConfig(guest_dir);
  if (!config.ok()) return config.status();
  if (::mkdir(dir.c_str(), 0755) != 0) return Status::FromErrno(errno, "mkdir", dir);
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(guest_dir, error)) {
    const std::string name = entry.path().filename();
    if (!entry.is_regular_file() || name == qemu::kConfigFile || entry.path() == config->memory_file ||
        name.ends_with(".log") || name.ends_with(".sock")) {
      continue;
    }
    FE_RETURN_IF_ERROR(RunProcessChecked({"cp", "--reflink=auto", entry.path(), dir + "/" + name}));
  }
  if (error) return Status::FromErrno(error.value(), "list", guest_dir);
  std::string text = qemu::SerializeConfig(*config);
  const std::string from = guest_dir + "/", to = dir + "/";
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  Result<qemu::Config> moved = qemu::ParseConfig(text, dir);
  if (!moved.ok()) return moved.status();
  moved->memory_mib = memory_mib;
  moved->memory_file = shared_ram ? dir + "/mem.bin" : "";
  // Half the RAM written before the guest beats: what a busy guest has, and what the full-RAM save
  // must write (an idle guest's RAM is zero pages, which migration skips).
  moved->append += " fe.fill_mib=" + std::to_string(memory_mib / 2);
  return qemu::WriteConfig(dir, *moved);
}

Status WaitForGuestBeat(const engine::Engine& engine, const engine::Instance& instance) {
  const std::string dir = engine.backend().Path(instance.volume);
  Result<qemu::Config> config = qemu::ReadConfig(dir);
  if (!config.ok()) return config.status();
  std::string log;
  for (const qemu::Chardev& chardev : config->chardevs) {
    if (chardev.id == config->serial) log = chardev.path;
  }
  if (log.empty()) return Status::InvalidArgument(dir + ": the guest has no serial log");
  const Clock::time_point deadline = Clock::now() + kBootTimeout;
  for (;;) {
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    if (text.str().find("\nbeat ") != std::string::npos) return Status::Ok();
    if (Clock::now() > deadline) return Status::Internal(log + ": the guest printed no heartbeat");
    std::this_thread::sleep_for(50ms);
  }
}

}  // namespace fe::bench
