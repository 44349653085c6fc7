#include "bench/qemu_guest_template.h"

#include <sched.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/core.h>

#include "base/process.h"
#include "bench/scratch_filesystem.h"
#include "hypervisor/qemu/qemu_config.h"

namespace fe::bench {
namespace {

namespace fs = std::filesystem;
namespace qemu = hypervisor::qemu;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kBootTimeout = 180s;

}  // namespace

Status MakeQemuTemplate(const std::string& guest_dir, const std::string& dir, uint64_t memory_mib, bool shared_ram,
                        uint64_t dirty_rate_mibs) {
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
  // A busy guest keeps rewriting a quarter of its RAM beside a quarter written once (half in all: more
  // gets the rewriter killed for want of memory in a 256 MiB guest).
  if (dirty_rate_mibs == 0) {
    moved->append += " fe.fill_mib=" + std::to_string(memory_mib / 2);
  } else {
    moved->append += fmt::format(" fe.fill_mib={} fe.dirty_mib={} fe.dirty_rate={}", memory_mib / 4, memory_mib / 4,
                                 dirty_rate_mibs);
  }
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

int RunGuestBench(const GuestBenchSite& site,
                  const std::function<Status(engine::Engine& engine, const std::string& root)>& body,
                  const std::function<void()>& report) {
  const std::string who = "forkbench " + site.mode;
  if (site.guest_dir.empty() || site.guest_dir[0] != '/') {
    fmt::print(stderr, "{}: --guest-dir must be an absolute guest directory (tests/e2e's fe-e2e-guest writes one)\n",
               who);
    return 2;
  }
  Result<std::unique_ptr<WorkDirectory>> work = WorkDirectory::Create("/var/tmp");
  if (!work.ok()) {
    fmt::print(stderr, "{}: {}\n", who, work.status().ToString());
    return 1;
  }
  Result<std::unique_ptr<ScratchFilesystem>> scratch = ScratchFilesystem::Open(ScratchKind::kXfs, (*work)->path());
  if (!scratch.ok()) {
    fmt::print(stderr, "{}: {}\n", who, scratch.status().ToString());
    return 1;
  }
  fmt::print("{}: guest {}, on {}\n", who, site.guest_dir, (*scratch)->description());
  const std::string root = (*scratch)->root();
  Status status = Status::Ok();
  std::thread thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      status = Status::FromErrno(errno, "unshare(CLONE_NEWNET)", who);
      return;
    }
    status = [&]() -> Status {
      for (const std::vector<std::string>& command : {std::vector<std::string>{"ip", "link", "set", "lo", "up"},
                                                      {"ip", "link", "add", site.bridge, "type", "bridge"},
                                                      {"ip", "addr", "add", "10.100.0.1/16", "dev", site.bridge},
                                                      {"ip", "link", "set", site.bridge, "up"}}) {
        FE_RETURN_IF_ERROR(RunProcessChecked(command));
      }
      engine::EngineConfig config;
      config.data_root = root + "/d";
      config.manage_taps = true;
      config.bridge = site.bridge;
      config.hypervisor_timeout = site.hypervisor_timeout;
      config.identity_timeout = site.identity_timeout;
      Result<std::unique_ptr<engine::Engine>> engine = engine::Engine::Open(config);
      if (!engine.ok()) return engine.status();
      return body(**engine, root);
    }();
  });
  thread.join();
  report();
  if (!status.ok()) fmt::print(stderr, "{}: {}\n", who, status.ToString());
  if (Status closed = (*scratch)->Close(); !closed.ok()) fmt::print(stderr, "{}: {}\n", who, closed.ToString());
  return status.ok() ? 0 : 1;
}

}  // namespace fe::bench
