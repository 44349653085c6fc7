// forkbench --e2e: forks of a real running guest under QEMU TCG, through the engine (in process),
// per phase, and how long the source is paused as its RAM grows.
//
// The guest is a QEMU guest directory (qemu-config.json with a kernel and initramfs, everything it
// names inside the directory) whose guest prints "beat ..." lines on its serial log once it runs and
// runs forkagent on the identity port: tests/e2e's fe-e2e-guest writes one (the bench does not link
// the test tree's guest builder). For each RAM size the bench makes two templates from it, whose
// guests write half their RAM with non-zero data before they beat (a snapshot of an idle guest is
// mostly zero pages, which migration skips):
//  - shared: RAM in a shared file (memory_file), so a from_running fork takes the live path (pause,
//    device state only, FICLONE of the RAM file, resume): its source_pause is the number to watch;
//  - anonymous: no memory_file, so the same fork takes the full path (standby: stop and save all of
//    RAM, restore the source afterwards): its source_standby is the anchor the pause is compared with;
//    and, forked with source_pause "background", the background snapshot (its guest's filesystems frozen
//    by its agent for the clone and QEMU's capture, the VM stopped only for that capture, RAM saved while
//    the source runs, the fork ready once that save and its full load are done).
// Each source is booted, forked `repetitions` times to Running (each fork deleted again) and deleted.
// First, the source's pause against how busy its guest is: for each RAM size and dirty rate, a source
// with shared RAM whose guest keeps rewriting a quarter of it, forked live with and without the pre-flush
// (engine/vm/ram_preflush.h), alternately; median and max pause, pre-flush, throttle, dirty bytes; and
// the same guest with anonymous RAM forked with source_pause "background": its pause and the fork's ready time.
// Runs as root on a loop-mounted reflink XFS, in a network namespace of its own with a bridge.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fe::bench {

struct E2eOptions {
  std::string guest_dir;
  std::vector<uint64_t> memory_mib = {256, 1024};
  int repetitions = 5;
  // The pause table: busy sources whose guests rewrite a quarter of their RAM at each rate, each forked live
  // `repetitions` times with the pre-flush and as many without.
  std::vector<uint64_t> dirty_rates_mibs = {0, 64, 200};
  bool phases = true;  // also the per-phase table, live path against the full path
};

// Prints one table per RAM size; 0 when every measurement ran, 1 otherwise.
int RunE2e(const E2eOptions& options);

}  // namespace fe::bench
