// A QEMU template for the benchmarks that run real guests (forkbench --e2e, --density): made from a
// guest directory such as tests/e2e's fe-e2e-guest writes, whose guest prints "beat ..." lines on its
// serial log once it runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "base/status.h"
#include "engine/engine.h"

namespace fe::bench {

// `guest_dir`'s files copied to `dir` (not its config, RAM file, logs or sockets), with every path of
// its config moved there, its RAM set to `memory_mib`, in a shared file when `shared_ram`, half of it
// filled by the guest before it runs (a snapshot of an idle guest is mostly zero pages). With
// `dirty_rate_mibs`, the guest instead fills a quarter and keeps rewriting another quarter at that rate
// (tests/e2e's fe-guest-dirtier), as a busy guest does.
Status MakeQemuTemplate(const std::string& guest_dir, const std::string& dir, uint64_t memory_mib, bool shared_ram,
                        uint64_t dirty_rate_mibs = 0);

// Waits (up to 180 s: a bound for a guest that never boots, not a measurement) until the instance's
// serial log shows the guest's first heartbeat.
Status WaitForGuestBeat(const engine::Engine& engine, const engine::Instance& instance);

// Where a benchmark of real guests runs: a loop-mounted reflink XFS in /var/tmp and, on a thread in a
// network namespace of its own, a bridge holding 10.100.0.1/16 and an engine on the scratch
// filesystem that puts its instances' TAPs on it.
struct GuestBenchSite {
  std::string mode;       // "--e2e", "--density": names the benchmark in what it prints
  std::string guest_dir;  // absolute (tests/e2e's fe-e2e-guest writes one)
  std::string bridge;
  std::chrono::milliseconds hypervisor_timeout{60'000};
  std::chrono::milliseconds identity_timeout{60'000};
};

// Runs `body(engine, root)` there (root: a directory of the scratch filesystem), then `report()`
// whatever happened, and tears everything down. The process exit code: 2 for a bad guest_dir, 1
// when anything failed (the error printed), else 0.
int RunGuestBench(const GuestBenchSite& site,
                  const std::function<Status(engine::Engine& engine, const std::string& root)>& body,
                  const std::function<void()>& report);

}  // namespace fe::bench
