#include "bench/snapshot_bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "bench/qemu_guest_template.h"
#include "engine/engine.h"

namespace fe::bench {
namespace {

using Phases = std::vector<engine::ForkPhases>;

double Ms(const Phases& samples, int64_t engine::ForkPhases::*field, bool max = false) {
  if (samples.empty()) return 0;
  std::vector<int64_t> values;
  for (const engine::ForkPhases& phases : samples) values.push_back(phases.*field);
  std::sort(values.begin(), values.end());
  return (max ? values.back() : values[values.size() / 2]) / 1000.0;
}

struct Measured {
  Phases snapshots, from_snapshot, from_instance;
  bool live = true;
};

// `repetitions` forks of `source` (a snapshot when `snapshot`) to Running, each deleted again.
Status ForkToRunning(engine::Engine& engine, const std::string& source, bool snapshot, const std::string& prefix,
                     int repetitions, Phases& out) {
  for (int i = 0; i < repetitions; ++i) {
    engine::ForkRequest request;
    request.name = prefix + std::to_string(i);
    request.target_state = engine::InstanceState::kRunning;
    Result<std::vector<engine::ForkOutcome>> forked =
        snapshot ? engine.ForkSnapshot(source, request) : engine.Fork(source, request);
    if (!forked.ok()) return forked.status();
    out.push_back(forked->front().phases);
    FE_RETURN_IF_ERROR(engine.Delete(request.name));
  }
  return Status::Ok();
}

Status Measure(const SnapshotBenchOptions& options, engine::Engine& engine, const std::string& root,
               Measured& measured) {
  const std::string template_dir = root + "/snapshot-template";
  FE_RETURN_IF_ERROR(MakeQemuTemplate(options.guest_dir, template_dir, options.memory_mib, /*shared_ram=*/true));
  engine::CreateRequest create;
  create.name = "src";
  create.hypervisor = "qemu";
  create.import_dir = template_dir;
  FE_RETURN_IF_ERROR(engine.Create(create).status());
  struct Cleanup {
    engine::Engine& engine;
    std::vector<std::string> snapshots;
    ~Cleanup() {
      (void)engine.Delete("standby");
      (void)engine.Delete("src");
      for (const std::string& id : snapshots) (void)engine.DeleteSnapshot(id);
    }
  } cleanup{engine, {}};
  Result<engine::Instance> source = engine.Start("src");
  if (!source.ok()) return source.status();
  FE_RETURN_IF_ERROR(WaitForGuestBeat(engine, *source));
  for (int i = 0; i < options.repetitions; ++i) {
    engine::SnapshotRequest request;
    request.name = "s";  // appended, not "s" + ...: GCC 12's -O3 -Wrestrict false positive on the latter
    request.name += std::to_string(i);
    Result<engine::ForkOutcome> taken = engine.TakeSnapshot("src", request);
    if (!taken.ok()) return taken.status();
    measured.live = measured.live && taken->live;
    measured.snapshots.push_back(taken->phases);
    cleanup.snapshots.push_back(taken->instance.id);
  }
  FE_RETURN_IF_ERROR(
      ForkToRunning(engine, cleanup.snapshots.front(), true, "fs", options.repetitions, measured.from_snapshot));
  engine::ForkRequest standby;
  standby.name = "standby";
  standby.from_running = true;
  standby.target_state = engine::InstanceState::kStandby;
  FE_RETURN_IF_ERROR(engine.Fork("src", standby).status());
  return ForkToRunning(engine, "standby", false, "fi", options.repetitions, measured.from_instance);
}

void Print(const SnapshotBenchOptions& options, const Measured& measured) {
  using P = engine::ForkPhases;
  fmt::print("\nsnapshot of a Running {} MiB guest ({} path), {} snapshots: ms\n", options.memory_mib,
             measured.live ? "live" : "standby-and-restore", measured.snapshots.size());
  fmt::print("  {:<36} {:>9} {:>9}\n", "", "median", "max");
  fmt::print("  {:<36} {:>9.1f} {:>9.1f}\n", "the source's pause (source_pause)",
             Ms(measured.snapshots, &P::source_pause_us), Ms(measured.snapshots, &P::source_pause_us, true));
  fmt::print("  {:<36} {:>9.1f} {:>9.1f}\n", "  of which the clone", Ms(measured.snapshots, &P::clone_us),
             Ms(measured.snapshots, &P::clone_us, true));
  fmt::print("  {:<36} {:>9.1f} {:>9.1f}\n", "the snapshot's total", Ms(measured.snapshots, &P::total_us),
             Ms(measured.snapshots, &P::total_us, true));
  fmt::print("\nforks to Running, {} each: medians, ms\n", measured.from_snapshot.size());
  fmt::print("  {:<36} {:>9} {:>9} {:>9} {:>9}\n", "", "clone", "restore", "identity", "total");
  for (const auto& [label, samples] : {std::pair{"of the snapshot", &measured.from_snapshot},
                                       std::pair{"of a Standby instance (same guest)", &measured.from_instance}}) {
    fmt::print("  {:<36} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f}\n", label, Ms(*samples, &P::clone_us),
               Ms(*samples, &P::restore_us), Ms(*samples, &P::identity_us), Ms(*samples, &P::total_us));
  }
}

}  // namespace

int RunSnapshotBench(const SnapshotBenchOptions& options) {
  Measured measured;
  return RunGuestBench(
      GuestBenchSite{"--snapshots", options.guest_dir, "febr-bench"},
      [&](engine::Engine& engine, const std::string& root) { return Measure(options, engine, root, measured); },
      [&] { Print(options, measured); });
}

}  // namespace fe::bench
