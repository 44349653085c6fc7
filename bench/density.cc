#include "bench/density.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include <fmt/core.h>

#include "base/process.h"
#include "bench/qemu_guest_template.h"
#include "engine/engine.h"
#include "engine/vm/process_memory.h"
#include "hypervisor/qemu/qemu_config.h"
#include "hypervisor/qemu/qmp_client.h"

namespace fe::bench {
namespace {

namespace qemu = hypervisor::qemu;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr double kMiB = 1024.0 * 1024.0;

struct Row {
  engine::MemoryMode mode = engine::MemoryMode::kPrivate;
  int forks = 0;
  uint64_t pss = 0;       // summed over the forks' processes
  uint64_t private_ = 0;  // summed
  uint64_t anonymous = 0;
  std::vector<int64_t> restore_us;
};

double Median(std::vector<int64_t> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return static_cast<double>(values[values.size() / 2]);
}

// Every page of the guest's RAM read once, through QMP (the fork's own socket, which forkd does not hold).
Status ReadAllRam(const engine::Engine& engine, const engine::Instance& fork, uint64_t memory_mib) {
  Result<qemu::Config> config = qemu::ReadConfig(engine.backend().Path(fork.volume));
  if (!config.ok()) return config.status();
  Result<qemu::QmpClient> qmp = qemu::QmpClient::Connect(config->qmp_socket, 30s);
  if (!qmp.ok()) return qmp.status();
  nlohmann::json arguments = {{"val", 0}, {"size", memory_mib << 20}, {"filename", "/dev/null"}};
  return qmp->Execute("pmemsave", arguments, 300s).status().Annotate("pmemsave of " + fork.name);
}

// N forks of `source` in `mode`, each reading its RAM, measured, then deleted.
Status MeasureForks(engine::Engine& engine, const std::string& source, uint64_t memory_mib, Row& row) {
  engine::ForkRequest request;
  request.name = fmt::format("{}-{}", engine::MemoryModeName(row.mode), row.forks);
  request.count = row.forks;
  request.target_state = engine::InstanceState::kRunning;
  request.memory = row.mode;
  Result<std::vector<engine::ForkOutcome>> forks = engine.Fork(source, request);
  if (!forks.ok()) return forks.status();
  Status status = Status::Ok();
  for (const engine::ForkOutcome& fork : *forks) {
    row.restore_us.push_back(fork.phases.restore_us);
    if (status.ok()) status = ReadAllRam(engine, fork.instance, memory_mib);
  }
  for (const engine::ForkOutcome& fork : *forks) {
    if (!status.ok() || !fork.instance.process) break;
    Result<engine::vm::ProcessMemory> memory = engine::vm::ReadProcessMemory(*fork.instance.process);
    if (!memory.ok()) {
      status = memory.status();
      break;
    }
    row.pss += memory->pss_bytes;
    row.private_ += memory->private_bytes;
    row.anonymous += memory->anonymous_bytes;
  }
  for (const engine::ForkOutcome& fork : *forks) (void)engine.Delete(fork.instance.id);
  return status;
}

// One fork of `source` in `mode`, Running, then stood by: how long the standby takes and what it wrote.
Status MeasureStandby(engine::Engine& engine, const std::string& source, engine::MemoryMode mode, double& ms,
                      uint64_t& state_bytes) {
  engine::ForkRequest request;
  request.name = fmt::format("standby-{}", engine::MemoryModeName(mode));
  request.target_state = engine::InstanceState::kRunning;
  request.memory = mode;
  Result<std::vector<engine::ForkOutcome>> forks = engine.Fork(source, request);
  if (!forks.ok()) return forks.status();
  const Clock::time_point start = Clock::now();
  Result<engine::Instance> standby = engine.Standby(request.name);
  ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  Status status = standby.status();
  if (status.ok()) {
    struct stat st {};
    const std::string state = engine.backend().Path(standby->volume) + "/snapshot/vmstate";
    if (::stat(state.c_str(), &st) != 0) status = Status::FromErrno(errno, "stat", state);
    state_bytes = static_cast<uint64_t>(st.st_size);
  }
  (void)engine.Delete(request.name);
  return status;
}

void Print(const std::vector<Row>& rows, uint64_t memory_mib, double standby_ms[2], uint64_t state_bytes[2]) {
  fmt::print("\n{:<8} {:>5} {:>13} {:>10} {:>17} {:>13} {:>12}\n", "memory", "forks", "PSS total MiB", "PSS/fork",
             "private total MiB", "anonymous MiB", "restore ms");
  for (const Row& row : rows) {
    fmt::print("{:<8} {:>5} {:>13.0f} {:>10.1f} {:>17.0f} {:>13.0f} {:>12.0f}\n", engine::MemoryModeName(row.mode),
               row.forks, row.pss / kMiB, row.pss / kMiB / row.forks, row.private_ / kMiB, row.anonymous / kMiB,
               Median(row.restore_us) / 1000.0);
  }
  for (const Row& shared : rows) {
    if (shared.mode != engine::MemoryMode::kShared) continue;
    for (const Row& own : rows) {
      if (own.mode != engine::MemoryMode::kPrivate || own.forks != shared.forks || shared.pss == 0) continue;
      fmt::print("{} forks: shared {:.0f} MiB vs private {:.0f} MiB summed PSS: {:.1f}x less\n", shared.forks,
                 shared.pss / kMiB, own.pss / kMiB, static_cast<double>(own.pss) / static_cast<double>(shared.pss));
    }
  }
  fmt::print(
      "standby of one fork: private {:.0f} ms ({:.1f} MiB of device state; its RAM stays in its own file), "
      "shared {:.0f} ms ({:.1f} MiB: its RAM saved in full, a file of its own)\n",
      standby_ms[0], state_bytes[0] / kMiB, standby_ms[1], state_bytes[1] / kMiB);
  fmt::print(
      "(template: {} MiB of RAM, half written by its guest; each fork read all its RAM (pmemsave) before it was\n"
      " measured. PSS: the forks' hypervisor processes' proportional set, summed (shared pages counted once);\n"
      " private: pages no other process maps; restore: median of the forks' restore phase, identity included.)\n",
      memory_mib);
}

Status MeasureAll(const DensityOptions& options, engine::Engine& engine, const std::string& root,
                  std::vector<Row>& rows, double standby_ms[2], uint64_t state_bytes[2]) {
  const std::string template_dir = root + "/template";
  FE_RETURN_IF_ERROR(MakeQemuTemplate(options.guest_dir, template_dir, options.memory_mib, /*shared_ram=*/true));
  engine::CreateRequest create;
  create.name = "template";
  create.hypervisor = "qemu";
  create.import_dir = template_dir;
  Result<engine::Instance> created = engine.Create(create);
  if (!created.ok()) return created.status();
  Result<engine::Instance> started = engine.Start("template");
  if (!started.ok()) return started.status();
  FE_RETURN_IF_ERROR(WaitForGuestBeat(engine, *started));
  FE_RETURN_IF_ERROR(engine.Standby("template").status());
  for (engine::MemoryMode mode : {engine::MemoryMode::kPrivate, engine::MemoryMode::kShared}) {
    for (int count : options.counts) {
      Row row;
      row.mode = mode;
      row.forks = count;
      FE_RETURN_IF_ERROR(MeasureForks(engine, "template", options.memory_mib, row)
                             .Annotate(fmt::format("{} forks, memory {}", count, engine::MemoryModeName(mode))));
      rows.push_back(std::move(row));
      fmt::print("{} forks, memory {}: done\n", count, engine::MemoryModeName(mode));
      std::fflush(stdout);
    }
  }
  FE_RETURN_IF_ERROR(MeasureStandby(engine, "template", engine::MemoryMode::kPrivate, standby_ms[0], state_bytes[0]));
  FE_RETURN_IF_ERROR(MeasureStandby(engine, "template", engine::MemoryMode::kShared, standby_ms[1], state_bytes[1]));
  return engine.Delete("template");
}

}  // namespace

int RunDensity(const DensityOptions& options) {
  std::vector<Row> rows;
  double standby_ms[2] = {0, 0};
  uint64_t state_bytes[2] = {0, 0};
  GuestBenchSite site{"--density", options.guest_dir, "febr-density"};
  site.hypervisor_timeout = 120s;
  site.identity_timeout = 300s;  // 32 TCG guests on a few cores answer slowly
  return RunGuestBench(
      site,
      [&](engine::Engine& engine, const std::string& root) {
        return MeasureAll(options, engine, root, rows, standby_ms, state_bytes);
      },
      [&] { Print(rows, options.memory_mib, standby_ms, state_bytes); });
}

}  // namespace fe::bench
