#include "bench/e2e_fork.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include "base/process.h"
#include "bench/qemu_guest_template.h"
#include "engine/engine.h"
#include "hypervisor/qemu/qemu_config.h"

namespace fe::bench {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Row {
  uint64_t memory_mib = 0;
  std::string path;  // "live (shared RAM)" or "full (anonymous RAM)"
  std::vector<engine::ForkPhases> forks;
};

double MedianMs(const std::vector<engine::ForkPhases>& forks, int64_t engine::ForkPhases::*field) {
  if (forks.empty()) return 0;
  std::vector<int64_t> values;
  for (const engine::ForkPhases& phases : forks) values.push_back(phases.*field);
  std::sort(values.begin(), values.end());
  return values[values.size() / 2] / 1000.0;
}

// One source: boot it, fork it `repetitions` times to Running (deleting each fork), delete it.
Status Measure(engine::Engine& engine, const std::string& template_dir, const std::string& name, int repetitions,
               Row& row) {
  engine::CreateRequest create;
  create.name = name;
  create.hypervisor = "qemu";
  create.import_dir = template_dir;
  Result<engine::Instance> created = engine.Create(create);
  if (!created.ok()) return created.status();
  struct Cleanup {
    engine::Engine& engine;
    std::string name;
    ~Cleanup() { (void)engine.Delete(name); }
  } cleanup{engine, name};
  Result<engine::Instance> source = engine.Start(name);
  if (!source.ok()) return source.status();
  FE_RETURN_IF_ERROR(WaitForGuestBeat(engine, *source));
  for (int i = 0; i < repetitions; ++i) {
    engine::ForkRequest request;
    request.name = name + "-f" + std::to_string(i);
    request.from_running = true;
    request.target_state = engine::InstanceState::kRunning;
    Result<std::vector<engine::ForkOutcome>> forked = engine.Fork(name, request);
    if (!forked.ok()) return forked.status();
    row.forks.push_back((*forked)[0].phases);
    FE_RETURN_IF_ERROR(engine.Delete(request.name));
  }
  return Status::Ok();
}

void Print(const std::vector<Row>& rows) {
  fmt::print("\n{:>8}  {:<22} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>9}\n", "RAM MiB", "path", "src stop", "clone",
             "rewrite", "metadata", "restore", "identity", "total");
  for (const Row& row : rows) {
    const double stop = std::max(MedianMs(row.forks, &engine::ForkPhases::source_pause_us),
                                 MedianMs(row.forks, &engine::ForkPhases::source_standby_us));
    fmt::print(
        "{:>8}  {:<22} {:>9.1f} {:>9.1f} {:>8.1f} {:>8.1f} {:>9.1f} {:>9.1f} {:>9.1f}\n", row.memory_mib, row.path,
        stop, MedianMs(row.forks, &engine::ForkPhases::clone_us), MedianMs(row.forks, &engine::ForkPhases::rewrite_us),
        MedianMs(row.forks, &engine::ForkPhases::metadata_us), MedianMs(row.forks, &engine::ForkPhases::restore_us),
        MedianMs(row.forks, &engine::ForkPhases::identity_us), MedianMs(row.forks, &engine::ForkPhases::total_us));
  }
  fmt::print(
      "(ms, medians of {} forks each. src stop: the source's source_pause phase on the live path (pause, device\n"
      " state, clone, resume), its source_standby phase on the full path (the standby that saves all RAM): the\n"
      " anchor. restore includes identity, the agent's ack. Each guest wrote half its RAM before the forks\n"
      " (zero pages, which QEMU's migration skips, would make the anchor track written RAM, not RAM size).)\n",
      rows.empty() ? 0 : rows[0].forks.size());
}

// The measurements, on the engine of the benchmark's site.
Status MeasureAll(const E2eOptions& options, engine::Engine& engine, const std::string& root, std::vector<Row>& rows) {
  if (!engine.backend().Capabilities().shares_data) {
    return Status::Unsupported("the scratch filesystem's backend does not share data: no live path");
  }
  for (uint64_t memory_mib : options.memory_mib) {
    for (bool shared : {true, false}) {
      const std::string suffix = std::to_string(memory_mib) + (shared ? "s" : "a");
      const std::string template_dir = root + "/t" + suffix;
      FE_RETURN_IF_ERROR(MakeQemuTemplate(options.guest_dir, template_dir, memory_mib, shared));
      Row row{memory_mib, shared ? "live (shared RAM)" : "full (anonymous RAM)", {}};
      Status measured = Measure(engine, template_dir, "b" + suffix, options.repetitions, row);
      rows.push_back(std::move(row));
      FE_RETURN_IF_ERROR(measured.Annotate(std::to_string(memory_mib) + " MiB, " + rows.back().path));
      fmt::print("{} MiB, {}: done\n", memory_mib, rows.back().path);
      std::fflush(stdout);
    }
  }
  return Status::Ok();
}

}  // namespace

int RunE2e(const E2eOptions& options) {
  std::vector<Row> rows;
  return RunGuestBench(
      GuestBenchSite{"--e2e", options.guest_dir, "febr-bench"},
      [&](engine::Engine& engine, const std::string& root) { return MeasureAll(options, engine, root, rows); },
      [&] { Print(rows); });
}

}  // namespace fe::bench
