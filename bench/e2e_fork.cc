#include "bench/e2e_fork.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

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
  std::string path;  // "live (shared RAM)", "full (anonymous RAM)" or "background (anonymous RAM)"
  engine::SourcePause source_pause = engine::SourcePause::kShort;
  std::vector<engine::ForkPhases> forks;
};

double MedianMs(const std::vector<engine::ForkPhases>& forks, int64_t engine::ForkPhases::*field) {
  if (forks.empty()) return 0;
  std::vector<int64_t> values;
  for (const engine::ForkPhases& phases : forks) values.push_back(phases.*field);
  std::sort(values.begin(), values.end());
  return values[values.size() / 2] / 1000.0;
}

// Imports `template_dir` as `name`, boots it, waits for its guest's first beat, runs `body`, and
// deletes the source whatever happened.
Status WithRunningSource(engine::Engine& engine, const std::string& template_dir, const std::string& name,
                         const std::function<Status()>& body) {
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
  return body();
}

// One source: boot it, fork it `repetitions` times to Running (deleting each fork), delete it.
Status Measure(engine::Engine& engine, const std::string& template_dir, const std::string& name, int repetitions,
               Row& row) {
  return WithRunningSource(engine, template_dir, name, [&]() -> Status {
    for (int i = 0; i < repetitions; ++i) {
      engine::ForkRequest request;
      request.name = name + "-f" + std::to_string(i);
      request.from_running = true;
      request.target_state = engine::InstanceState::kRunning;
      request.source_pause = row.source_pause;
      Result<std::vector<engine::ForkOutcome>> forked = engine.Fork(name, request);
      if (!forked.ok()) return forked.status();
      row.forks.push_back((*forked)[0].phases);
      FE_RETURN_IF_ERROR(engine.Delete(request.name));
    }
    return Status::Ok();
  });
}

void Print(const std::vector<Row>& rows) {
  fmt::print("\n{:>8}  {:<26} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>9}\n", "RAM MiB", "path", "src stop",
             "fs frozen", "bg save", "clone", "rewrite", "metadata", "restore", "identity", "total");
  for (const Row& row : rows) {
    const double stop = std::max(MedianMs(row.forks, &engine::ForkPhases::source_pause_us),
                                 MedianMs(row.forks, &engine::ForkPhases::source_standby_us));
    fmt::print(
        "{:>8}  {:<26} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f} {:>8.1f} {:>8.1f} {:>9.1f} {:>9.1f} {:>9.1f}\n",
        row.memory_mib, row.path, stop, MedianMs(row.forks, &engine::ForkPhases::filesystems_frozen_us),
        MedianMs(row.forks, &engine::ForkPhases::background_snapshot_us),
        MedianMs(row.forks, &engine::ForkPhases::clone_us), MedianMs(row.forks, &engine::ForkPhases::rewrite_us),
        MedianMs(row.forks, &engine::ForkPhases::metadata_us), MedianMs(row.forks, &engine::ForkPhases::restore_us),
        MedianMs(row.forks, &engine::ForkPhases::identity_us), MedianMs(row.forks, &engine::ForkPhases::total_us));
  }
  fmt::print(
      "(ms, medians of {} forks each. src stop: the source's source_pause phase on the live path (pause, device\n"
      " state, clone, resume) and with source_pause \"background\" (QEMU's own stop for its capture, the\n"
      " guest running with its filesystems frozen by its agent around it: fs frozen, from the freeze through\n"
      " the clone and QEMU's snapshot setup to the thaw), its source_standby phase on the full path (the\n"
      " standby that saves all RAM): the anchor. bg save: \"background\" only, the snapshot writing RAM while\n"
      " the source ran, which the fork waits for before its restore. restore includes identity, the agent's\n"
      " ack; total is when the fork is ready. Each guest wrote half its RAM before the forks (zero pages,\n"
      " which QEMU's migration skips, would make the anchor track written RAM, not RAM size).)\n",
      rows.empty() ? 0 : rows[0].forks.size());
}

// One busy source forked live, alternately with and without the pre-flush; or, with anonymous RAM,
// forked with source_pause "background".
struct PauseRow {
  uint64_t memory_mib = 0;
  uint64_t dirty_rate_mibs = 0;
  const char* mode = "pre-flush";  // "pre-flush", "no flush" (live, without the pre-flush) or "background"
  std::vector<engine::ForkPhases> forks;
};

double MaxMs(const std::vector<engine::ForkPhases>& forks, int64_t engine::ForkPhases::*field) {
  int64_t most = 0;
  for (const engine::ForkPhases& phases : forks) most = std::max(most, phases.*field);
  return most / 1000.0;
}

double MedianDirtyMib(const std::vector<engine::ForkPhases>& forks) {
  std::vector<uint64_t> values;
  for (const engine::ForkPhases& phases : forks) values.push_back(phases.dirty_bytes_at_pause.value_or(0));
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return static_cast<double>(values[values.size() / 2]) / (1 << 20);
}

Status MeasurePauses(engine::Engine& engine, const std::string& template_dir, const std::string& name, int repetitions,
                     PauseRow& with, PauseRow& without) {
  return WithRunningSource(engine, template_dir, name, [&]() -> Status {
    std::this_thread::sleep_for(2s);  // the dirtier has started and dirtied a while
    // Fork -1 is a warm-up, not counted: the first fork after the boot also writes back what the boot
    // left, whichever setting it has.
    for (int i = -1; i < 2 * repetitions; ++i) {
      PauseRow& row = i % 2 == 0 ? with : without;
      engine::ForkRequest request;
      request.name = name + "-p" + std::to_string(i + 1);
      request.from_running = true;
      request.target_state = engine::InstanceState::kRunning;
      request.preflush = &row == &with;
      Result<std::vector<engine::ForkOutcome>> forked = engine.Fork(name, request);
      if (!forked.ok()) return forked.status();
      if (!(*forked)[0].live) return Status::Internal(request.name + ": the live path was not taken");
      if (i >= 0) row.forks.push_back((*forked)[0].phases);
      FE_RETURN_IF_ERROR(engine.Delete(request.name));
      std::this_thread::sleep_for(1s);  // the guest dirties its RAM again
    }
    return Status::Ok();
  });
}

// A busy source with anonymous RAM forked `repetitions` times with source_pause "background".
Status MeasureBackground(engine::Engine& engine, const std::string& template_dir, const std::string& name,
                         int repetitions, PauseRow& row) {
  return WithRunningSource(engine, template_dir, name, [&]() -> Status {
    std::this_thread::sleep_for(2s);  // the dirtier has started and dirtied a while
    for (int i = 0; i < repetitions; ++i) {
      engine::ForkRequest request;
      request.name = name + "-n" + std::to_string(i);
      request.from_running = true;
      request.target_state = engine::InstanceState::kRunning;
      request.source_pause = engine::SourcePause::kBackground;
      Result<std::vector<engine::ForkOutcome>> forked = engine.Fork(name, request);
      if (!forked.ok()) return forked.status();
      row.forks.push_back((*forked)[0].phases);
      FE_RETURN_IF_ERROR(engine.Delete(request.name));
    }
    return Status::Ok();
  });
}

void PrintPauses(const std::vector<PauseRow>& rows) {
  fmt::print("\n{:>8} {:>10} {:>10} {:>12} {:>10} {:>10} {:>9} {:>7} {:>14} {:>10} {:>10}\n", "RAM MiB", "dirty MiB/s",
             "mode", "pause median", "pause max", "preflush", "throttle", "rounds", "dirty at pause", "fs frozen",
             "fork ready");
  for (const PauseRow& row : rows) {
    std::vector<int64_t> rounds;
    for (const engine::ForkPhases& phases : row.forks) rounds.push_back(phases.preflush_rounds);
    std::sort(rounds.begin(), rounds.end());
    fmt::print("{:>8} {:>10} {:>10} {:>12.1f} {:>10.1f} {:>10.1f} {:>9.1f} {:>7} {:>10.1f} MiB {:>10.1f} {:>10.1f}\n",
               row.memory_mib, row.dirty_rate_mibs, row.mode, MedianMs(row.forks, &engine::ForkPhases::source_pause_us),
               MaxMs(row.forks, &engine::ForkPhases::source_pause_us),
               MedianMs(row.forks, &engine::ForkPhases::preflush_us),
               MedianMs(row.forks, &engine::ForkPhases::throttle_us), rounds.empty() ? 0 : rounds[rounds.size() / 2],
               MedianDirtyMib(row.forks), MedianMs(row.forks, &engine::ForkPhases::filesystems_frozen_us),
               MedianMs(row.forks, &engine::ForkPhases::total_us));
  }
  fmt::print(
      "(ms, median and max of {} forks to Running per row. mode pre-flush / no flush: live forks (shared RAM file)\n"
      " with and without the pre-flush, alternately from one source whose guest rewrites a quarter of its RAM\n"
      " at the rate shown (fe-guest-dirtier), after one uncounted warm-up fork; background: forks with\n"
      " source_pause \"background\" of the same guest with anonymous RAM. pause: the source's source_pause\n"
      " phase; preflush, throttle: the rounds before it and how long of them the source ran CPU-throttled;\n"
      " dirty at pause: what the pause had to write back (cachestat); fs frozen: background only, how long\n"
      " the guest ran with its filesystems frozen by its agent (the pause is then QEMU's stop for its capture\n"
      " within it); fork ready: the fork's total, until it runs with its own identity.)\n",
      rows.empty() ? 0 : rows[0].forks.size());
}

// The measurements, on the engine of the benchmark's site.
Status MeasureAll(const E2eOptions& options, engine::Engine& engine, const std::string& root, std::vector<Row>& rows) {
  if (!engine.backend().Capabilities().shares_data) {
    return Status::Unsupported("the scratch filesystem's backend does not share data: no live path");
  }
  for (uint64_t memory_mib : options.memory_mib) {
    const std::string shared_dir = root + "/t" + std::to_string(memory_mib) + "s";
    const std::string anonymous_dir = root + "/t" + std::to_string(memory_mib) + "a";
    FE_RETURN_IF_ERROR(MakeQemuTemplate(options.guest_dir, shared_dir, memory_mib, /*shared_ram=*/true));
    FE_RETURN_IF_ERROR(MakeQemuTemplate(options.guest_dir, anonymous_dir, memory_mib, /*shared_ram=*/false));
    const struct {
      const std::string& template_dir;
      const char* path;
      const char* name;
      engine::SourcePause source_pause;
    } kPaths[] = {{shared_dir, "live (shared RAM)", "s", engine::SourcePause::kShort},
                  {anonymous_dir, "full (anonymous RAM)", "a", engine::SourcePause::kShort},
                  {anonymous_dir, "background (anonymous RAM)", "n", engine::SourcePause::kBackground}};
    for (const auto& path : kPaths) {
      Row row{memory_mib, path.path, path.source_pause, {}};
      Status measured =
          Measure(engine, path.template_dir, fmt::format("b{}{}", memory_mib, path.name), options.repetitions, row);
      rows.push_back(std::move(row));
      FE_RETURN_IF_ERROR(measured.Annotate(std::to_string(memory_mib) + " MiB, " + rows.back().path));
      fmt::print("{} MiB, {}: done\n", memory_mib, rows.back().path);
      std::fflush(stdout);
    }
  }
  return Status::Ok();
}

}  // namespace

Status MeasureAllPauses(const E2eOptions& options, engine::Engine& engine, const std::string& root,
                        std::vector<PauseRow>& rows) {
  for (uint64_t memory_mib : options.memory_mib) {
    for (uint64_t rate : options.dirty_rates_mibs) {
      const std::string suffix = std::to_string(memory_mib) + "d" + std::to_string(rate);
      const std::string template_dir = root + "/t" + suffix;
      FE_RETURN_IF_ERROR(MakeQemuTemplate(options.guest_dir, template_dir, memory_mib, /*shared_ram=*/true, rate));
      PauseRow with{memory_mib, rate, "pre-flush", {}};
      PauseRow without{memory_mib, rate, "no flush", {}};
      Status measured = MeasurePauses(engine, template_dir, "b" + suffix, options.repetitions, with, without);
      rows.push_back(std::move(with));
      rows.push_back(std::move(without));
      FE_RETURN_IF_ERROR(measured.Annotate(fmt::format("{} MiB dirtied at {} MiB/s", memory_mib, rate)));
      const std::string anonymous_dir = template_dir + "a";
      FE_RETURN_IF_ERROR(MakeQemuTemplate(options.guest_dir, anonymous_dir, memory_mib, /*shared_ram=*/false, rate));
      PauseRow background{memory_mib, rate, "background", {}};
      measured = MeasureBackground(engine, anonymous_dir, fmt::format("b{}a", suffix), options.repetitions, background);
      rows.push_back(std::move(background));
      FE_RETURN_IF_ERROR(
          measured.Annotate(fmt::format("{} MiB dirtied at {} MiB/s, source_pause background", memory_mib, rate)));
      fmt::print("{} MiB dirtied at {} MiB/s: done\n", memory_mib, rate);
      std::fflush(stdout);
    }
  }
  return Status::Ok();
}

int RunE2e(const E2eOptions& options) {
  std::vector<Row> rows;
  std::vector<PauseRow> pauses;
  return RunGuestBench(
      GuestBenchSite{"--e2e", options.guest_dir, "febr-bench"},
      [&](engine::Engine& engine, const std::string& root) {
        FE_RETURN_IF_ERROR(MeasureAllPauses(options, engine, root, pauses));
        return options.phases ? MeasureAll(options, engine, root, rows) : Status::Ok();
      },
      [&] {
        PrintPauses(pauses);
        if (options.phases) Print(rows);
      });
}

}  // namespace fe::bench
