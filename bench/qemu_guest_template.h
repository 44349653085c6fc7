// A QEMU template for the benchmarks that run real guests (forkbench --e2e, --density): made from a
// guest directory such as tests/e2e's fe-e2e-guest writes, whose guest prints "beat ..." lines on its
// serial log once it runs.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "engine/engine.h"

namespace fe::bench {

// `guest_dir`'s files copied to `dir` (not its config, RAM file, logs or sockets), with every path of
// its config moved there, its RAM set to `memory_mib`, in a shared file when `shared_ram`, half of it
// filled by the guest before it runs (a snapshot of an idle guest is mostly zero pages).
Status MakeQemuTemplate(const std::string& guest_dir, const std::string& dir, uint64_t memory_mib, bool shared_ram);

// Waits (up to 180 s: a bound for a guest that never boots, not a measurement) until the instance's
// serial log shows the guest's first heartbeat.
Status WaitForGuestBeat(const engine::Engine& engine, const engine::Instance& instance);

}  // namespace fe::bench
