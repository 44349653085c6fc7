// The guest of the end-to-end fork test: the host's Debian kernel under QEMU TCG booting a busybox
// initramfs that loads virtio-net and virtio-console, gives eth0 the IPv4 address its MAC encodes
// (the engine's allocator makes MACs 02:fe:<the four bytes of the address>), starts forkagent on
// the identity port, fills fe.fill_mib=N MiB of RAM (a kernel argument, when given) with non-zero
// data, keeps rewriting fe.dirty_mib MiB at fe.dirty_rate MiB/s when given, and then prints a heartbeat line on its
// serial console every 200 ms:
//
//   beat <n> mac=<eth0's MAC> ip=<eth0's first IPv4/prefix> rand=<md5 of 256 fresh bytes of
//   /dev/urandom> time=<CLOCK_REALTIME in ms>
//
// Every field is read anew for each line, so a line printed after a fork shows what the guest has
// then: its NIC's MAC and address after the agent applied the handoff, its clock after the agent set
// it, and bytes from an RNG the kernel reseeded when the vmgenid changed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <utility>
#include <string>
#include <vector>

#include "base/status.h"

namespace fe::e2e {

// Writes the guest directory `dir` (existing, empty): its initramfs and qemu-config.json, with guest
// RAM in <dir>/mem.bin (`memory_mib`), serial log <dir>/serial.log, the identity port on
// <dir>/identity.sock, QMP on <dir>/qmp.sock, a vmgenid, and a NIC whose TAP and MAC the import replaces.
// `forkagent` is the agent binary and `dirtier` fe-guest-dirtier (each copied with its shared
// libraries, if any); kernel arguments fe.dirty_mib=N fe.dirty_rate=R start the dirtier.
Status MakeForkGuest(const std::string& dir, uint64_t memory_mib, const std::string& forkagent,
                     const std::string& dirtier);

struct Beat {
  int number = -1;
  std::string mac;
  std::string ip;       // "10.100.0.3/16"
  std::string rand;     // 32 hex digits
  int64_t time_ms = 0;  // the guest's wall clock when it printed the line
};

// The complete heartbeat lines of a serial log, in order (other lines, and a last line without its
// newline, are skipped).
std::vector<Beat> ReadBeats(const std::string& serial_log);

// Waits until the log holds a beat for which `done` is true; the first such beat, or an error naming
// the log and its last beat at the timeout.
Result<Beat> WaitForBeat(const std::string& serial_log, const std::function<bool(const Beat&)>& done,
                         std::chrono::milliseconds timeout);

// A beat and the host's CLOCK_REALTIME (ms) around the moment the guest read its clock for it: the
// guest read it after printing the previous beat (which the host saw at `previous_seen_ms`, polling
// every few ms) and before printing this one (seen at `seen_ms`). Comparing the guest's time with
// this window, rather than with one instant, leaves out how long a line takes to reach the log.
struct TimedBeat {
  Beat beat;
  int64_t previous_seen_ms = 0;
  int64_t seen_ms = 0;
};

// Waits for two new beat lines and returns the second, timed.
Result<TimedBeat> NextTimedBeat(const std::string& serial_log, std::chrono::milliseconds timeout);

std::string Describe(const Beat& beat);

}  // namespace fe::e2e
