// The fixture of the end-to-end tests of real guests (tests/e2e/*_e2e_test.cc): a network namespace
// of the test's own with a bridge holding the subnet's gateway, forkd and forkctl as built on a data
// root on reflink XFS, a guest booted from tests/e2e/fork_guest.h, and the checks that a fork runs on
// with its own identity, clock and randomness. Label e2e.
#pragma once

#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include "base/process.h"
#include "engine/vm/process_stat.h"
#include "hypervisor/qemu/qemu_config.h"
#include "hypervisor/qemu/qmp_client.h"
#include "tests/e2e/fork_guest.h"
#include "tests/e2e/host_view.h"
#include "tests/engine/forkd/forkd_harness.h"
#include "tests/guest/guest_runner.h"
#include "tests/support/file_util.h"
#include "tests/support/network_namespace.h"
#include "tests/support/scratch.h"

namespace fe::e2e {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline constexpr char kBridge[] = "febr-e2e";
inline constexpr char kGateway[] = "10.100.0.1";
// Under ASan and a busy 2-core CI machine a TCG boot can take far longer than its usual ~5 s: these
// bound a hung guest, they are not performance expectations.
inline constexpr auto kBootTimeout = 180s;
inline constexpr auto kBeatTimeout = 60s;
// How long the child's standby snapshot sits before it is forked: long enough that a guest clock
// nobody set would be visibly behind the host's.
inline constexpr auto kSnapshotSits = 3s;

// What the test needs of an instance, from forkd's JSON.
struct Vm {
  std::string name, id, state, mac, ipv4, tap, serial_log;
  pid_t pid = -1;
};

inline Vm ParseVm(const Json& json, const std::string& data_root) {
  Vm vm;
  vm.name = json.value("name", "");
  vm.id = json.value("id", "");
  vm.state = json.value("state", "");
  const Json& identity = json.value("identity", Json::object());
  vm.mac = identity.value("mac", "");
  vm.ipv4 = identity.value("ipv4", "");
  vm.tap = identity.value("tap_device", "");
  vm.serial_log = data_root + "/volumes/" + json.value("storage", Json::object()).value("volume", "") + "/serial.log";
  if (json.contains("process") && json["process"].is_object()) vm.pid = json["process"].value("pid", -1);
  return vm;
}

// The forkd fork reply's phases, printed (measured, not asserted).
inline void PrintPhases(const std::string& what, const Json& fork) {
  const Json& phases = fork.value("phases", Json::object());
  std::printf("%s (live=%s, mechanism=%s):", what.c_str(), fork.value("live", false) ? "yes" : "no",
              fork.value("mechanism", "?").c_str());
  for (const char* phase : {"lock_wait", "source_standby", "preflush", "throttle", "huge_page_collapse", "source_pause",
                            "filesystems_frozen", "background_snapshot", "source_clock", "clone", "rewrite", "metadata",
                            "restore", "identity", "total"}) {
    std::printf(" %s %.1f ms", phase, phases.value(std::string(phase) + "_us", int64_t{0}) / 1000.0);
  }
  std::printf(" preflush_rounds %lld dirty_at_pause %s source_clock %s\n",
              static_cast<long long>(phases.value("preflush_rounds", int64_t{0})),
              phases.contains("dirty_bytes_at_pause") ? phases["dirty_bytes_at_pause"].dump().c_str() : "-",
              fork.value("source_clock", "-").c_str());
  std::fflush(stdout);
}

inline std::string SerialLog(const Vm& vm) {
  Result<std::string> log = fe::test::ReadFile(vm.serial_log);
  return log.ok() ? *log : log.status().ToString();
}

// A beat of `vm`'s guest wearing `vm`'s own identity, numbered above `after`.
inline Result<Beat> BeatWithOwnIdentity(const Vm& vm, int after) {
  return WaitForBeat(
      vm.serial_log,
      [&](const Beat& beat) { return beat.number > after && beat.mac == vm.mac && beat.ip == vm.ipv4 + "/16"; },
      kBeatTimeout);
}

// How far the guest's clock reading for a beat lies outside the host's time window around it (0:
// inside), in ms; negative when the guest is behind.
inline int64_t ClockOffset(const TimedBeat& timed) {
  if (timed.beat.time_ms < timed.previous_seen_ms) return timed.beat.time_ms - timed.previous_seen_ms;
  if (timed.beat.time_ms > timed.seen_ms) return timed.beat.time_ms - timed.seen_ms;
  return 0;
}

// The guest's clock offset, as the smallest of three timed beats: a guest the host's load delayed
// between reading its clock and printing the beat looks behind on that beat only, while a clock that
// is wrong is off on every beat.
inline Result<int64_t> MeasureClockOffset(const Vm& vm) {
  std::optional<int64_t> smallest;
  int timed_beats = 0;
  for (int attempt = 0; attempt < 5 && timed_beats < 3; ++attempt) {
    // Two beats at once (a descheduled poller) cannot be timed: that attempt is skipped.
    Result<TimedBeat> timed = NextTimedBeat(vm.serial_log, kBeatTimeout);
    if (!timed.ok()) continue;
    ++timed_beats;
    const int64_t offset = ClockOffset(*timed);
    std::printf("%s: guest clock %lld ms outside the host's window [%lld, %lld] (%s)\n", vm.name.c_str(),
                static_cast<long long>(offset), static_cast<long long>(timed->previous_seen_ms),
                static_cast<long long>(timed->seen_ms), Describe(timed->beat).c_str());
    if (!smallest || std::llabs(offset) < std::llabs(*smallest)) smallest = offset;
  }
  if (!smallest) return Status::TimedOut(vm.name + ": no beat could be timed");
  return *smallest;
}

class VmForkEndToEndTest : public fe::test::ScratchTest {
 protected:
  // In the test's network namespace: loopback up, and the bridge holding the subnet's gateway.
  static void MakeBridge() {
    for (const std::vector<std::string>& command :
         {std::vector<std::string>{"ip", "link", "set", "lo", "up"},
          {"ip", "link", "add", kBridge, "type", "bridge"},
          {"ip", "addr", "add", std::string(kGateway) + "/16", "dev", kBridge},
          {"ip", "link", "set", kBridge, "up"}}) {
      Status ran = RunProcessChecked(command);
      ASSERT_TRUE(ran.ok()) << ran.ToString();
    }
  }
  // <scratch>/<prefix>-<pid>, made, with the guest (256 MiB of RAM) in its "tpl" directory. 256 MiB: a
  // sanitized build's agent comes with its shared libraries (libasan...), and the kernel panics
  // unpacking that initramfs into 128 MiB.
  static void MakeRootWithGuest(const std::string& scratch, const std::string& prefix, std::string& root) {
    root = scratch + "/" + prefix + "-" + std::to_string(::getpid());
    ASSERT_EQ(::mkdir(root.c_str(), 0755), 0) << std::strerror(errno);
    const std::string template_dir = root + "/tpl";
    ASSERT_EQ(::mkdir(template_dir.c_str(), 0755), 0) << std::strerror(errno);
    Status made = MakeForkGuest(template_dir, 256, FE_FORKAGENT, FE_GUEST_DIRTIER);
    ASSERT_TRUE(made.ok()) << made.ToString();
  }

  // forkd on the data root <root>/d, started in the test's network namespace, and forkctl on its socket.
  struct Session {
    engine::forkd::test::ForkdProcess& forkd;
    const Forkctl& forkctl;
    std::string data_root;
    // forkctl's reply; an expectation fails, with forkd's log, when the command failed.
    Json Run(const std::vector<std::string>& args) const {
      Result<Json> reply = forkctl.Run(args);
      EXPECT_TRUE(reply.ok()) << reply.status().ToString() << "\nforkd's log:\n" << forkd.Log();
      return reply.ok() ? *reply : Json();
    }
    Vm Show(const std::string& name) const { return ParseVm(Run({"show", name}), data_root); }
  };
  // forkd on <root>/d (TAPs it makes and bridges, the bridge's subnet, and `extra_args`), answering;
  // null (with a failure) when it does not start.
  static std::unique_ptr<engine::forkd::test::ForkdProcess> StartForkd(
      const std::string& root, const std::vector<std::string>& extra_args = {}) {
    std::vector<std::string> args{"--bridge", kBridge,         "--manage-taps",         "on",
                                  "--subnet", "10.100.0.0/16", "--identity-timeout-ms", "60000"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    auto forkd = std::make_unique<engine::forkd::test::ForkdProcess>(root + "/d", root + "/forkd.sock",
                                                                     root + "/forkd.log", args);
    Status started = forkd->Start();
    Status ready = started.ok() ? forkd->WaitReady() : started;
    EXPECT_TRUE(ready.ok()) << ready.ToString();
    return ready.ok() ? std::move(forkd) : nullptr;
  }
  // Stops forkd the way forkd.service does (KillMode=process: SIGTERM to its main process alone); it
  // must exit 0.
  static void StopForkdAsItsUnitDoes(engine::forkd::test::ForkdProcess& forkd) {
    forkd.Signal(SIGTERM);
    const int status = forkd.Wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << forkd.Log();
  }
  // Makes the bridge, starts forkd (with `extra_args`) and runs `body` with it; then stops forkd as its
  // unit would.
  void WithForkd(const std::string& root, const std::function<void(const Session&)>& body,
                 const std::vector<std::string>& extra_args = {}) {
    MakeBridge();
    if (HasFatalFailure()) return;
    std::unique_ptr<engine::forkd::test::ForkdProcess> forkd = StartForkd(root, extra_args);
    ASSERT_NE(forkd, nullptr);
    const Forkctl forkctl(FE_FORKCTL, forkd->socket());
    body(Session{*forkd, forkctl, root + "/d"});
    if (HasFatalFailure()) return;
    StopForkdAsItsUnitDoes(*forkd);
  }
  // Creates `name` from `template_dir` and starts it; returns once its guest beats (the third beat)
  // with the identity forkd leased it.
  static void BootSource(const Session& session, const std::string& name, const std::string& template_dir, Vm& source) {
    session.Run({"create", name, "--hypervisor", "qemu", "--import", template_dir});
    session.Run({"start", name});
    source = session.Show(name);
    ASSERT_EQ(source.state, "Running") << session.forkd.Log();
    Result<Beat> booted = WaitForBeat(
        source.serial_log,
        [&](const Beat& b) { return b.number >= 3 && b.mac == source.mac && b.ip == source.ipv4 + "/16"; },
        kBootTimeout);
    ASSERT_TRUE(booted.ok()) << booted.status().ToString() << "\n" << SerialLog(source) << session.forkd.Log();
  }

  // The guest of `template_dir` keeps rewriting 32 MiB of its RAM at 16 MiB/s once it runs
  // (fe-guest-dirtier), so a fork finds it busy; with `anonymous_ram` its RAM is no shared file.
  static void KeepGuestBusy(const std::string& template_dir, bool anonymous_ram) {
    EditGuestConfig(template_dir, [&](hypervisor::qemu::Config& config) {
      if (anonymous_ram) config.memory_file.clear();
      config.append += " fe.dirty_mib=32 fe.dirty_rate=16";
    });
  }
  // The guest of `template_dir` beats `beats` times and then idles (fe.beats).
  static void IdleAfterBeats(const std::string& template_dir, int beats) {
    EditGuestConfig(template_dir,
                    [&](hypervisor::qemu::Config& config) { config.append += " fe.beats=" + std::to_string(beats); });
  }
  // Reads the QEMU config of `template_dir`, lets `edit` change it and writes it back.
  static void EditGuestConfig(const std::string& template_dir,
                              const std::function<void(hypervisor::qemu::Config&)>& edit) {
    Result<hypervisor::qemu::Config> config = hypervisor::qemu::ReadConfig(template_dir);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    edit(*config);
    Status written = hypervisor::qemu::WriteConfig(template_dir, *config);
    ASSERT_TRUE(written.ok()) << written.ToString();
  }

  // The fork's clock, set by the agent from the host's at the handoff, is within a second of the
  // host's however long the snapshot sat.
  void CheckClock(const Vm& fork) {
    Result<int64_t> offset = MeasureClockOffset(fork);
    ASSERT_TRUE(offset.ok()) << offset.status().ToString();
    EXPECT_LT(std::llabs(*offset), 1000) << fork.name << ": the agent did not set the fork's clock";
  }
  // The source's clock stood still while the fork paused it (live path) or stood it by (full path):
  // the engine then sets it through the agent (set_time), so it too is within a second of the host's.
  void CheckSourceClock(const Vm& source) {
    Result<int64_t> offset = MeasureClockOffset(source);
    ASSERT_TRUE(offset.ok()) << offset.status().ToString();
    EXPECT_LT(std::llabs(*offset), 1000) << source.name << ": the source's clock was not set after the fork";
  }

  // The checks after `fork` was made from `source` (whose guest showed `before_fork` just before):
  // both run on, the fork continues the guest from the snapshot with its own identity, clock and
  // randomness, both answer ping through their own TAPs, and no resource is held twice.
  void CheckPair(const Vm& source, const Vm& fork, const Beat& before_fork, const std::vector<Vm>& all_running) {
    SCOPED_TRACE("source " + source.name + ", fork " + fork.name);
    // The fork's log starts where the snapshot was taken: at or after the last beat seen before it.
    Result<Beat> first = WaitForBeat(
        fork.serial_log, [](const Beat&) { return true; }, kBeatTimeout);
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    EXPECT_GE(first->number, before_fork.number) << "the fork continues the guest from the snapshot";
    Result<Beat> fork_own = BeatWithOwnIdentity(fork, first->number);
    ASSERT_TRUE(fork_own.ok()) << "the fork's guest takes its new MAC and IP: " << fork_own.status().ToString();
    Result<Beat> fork_later = WaitForBeat(
        fork.serial_log, [&](const Beat& b) { return b.number >= fork_own->number + 2; }, kBeatTimeout);
    EXPECT_TRUE(fork_later.ok()) << "the fork's counter keeps increasing: " << fork_later.status().ToString();
    Result<Beat> source_own = BeatWithOwnIdentity(source, fork_own->number + 1);
    EXPECT_TRUE(source_own.ok()) << "the source runs on with its own MAC and IP: " << source_own.status().ToString();

    CheckClock(fork);
    CheckSourceClock(source);

    // Randomness: beats with the same number were printed after the same amount of RNG use in both
    // guests; without a reseed on the new vmgenid they would carry the same bytes. Compared from the
    // beat that showed the fork's new identity on: earlier ones may have read their bytes before the
    // snapshot (the one in flight) or before the guest handled the vmgenid change.
    int compared = 0;
    for (const Beat& a : ReadBeats(source.serial_log)) {
      if (a.number <= fork_own->number) continue;
      for (const Beat& b : ReadBeats(fork.serial_log)) {
        if (b.number != a.number) continue;
        ++compared;
        EXPECT_NE(a.rand, b.rand) << "beat " << a.number << ": both guests read the same bytes of /dev/urandom";
      }
    }
    EXPECT_GT(compared, 0) << "no beat number printed by both guests after the fork";

    for (const Vm& vm : {source, fork}) {
      Status pinged = Ping(vm.ipv4);
      EXPECT_TRUE(pinged.ok()) << vm.name << ": " << pinged.ToString();
      EXPECT_TRUE(BridgeLearned(kBridge, vm.mac, vm.tap))
          << vm.name << "'s MAC " << vm.mac << " is not behind " << vm.tap;
    }
    EXPECT_NE(source.tap, fork.tap);
    for (size_t i = 0; i < all_running.size(); ++i) {
      const std::set<std::string> mine = HeldResources(all_running[i].pid);
      EXPECT_FALSE(mine.empty()) << all_running[i].name;
      for (size_t j = i + 1; j < all_running.size(); ++j) {
        for (const std::string& resource : HeldResources(all_running[j].pid)) {
          EXPECT_EQ(mine.count(resource), 0u)
              << all_running[i].name << " and " << all_running[j].name << " both hold " << resource;
        }
      }
    }
  }
};

}  // namespace fe::e2e
