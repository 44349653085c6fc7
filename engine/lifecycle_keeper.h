// Enforces instances' lifecycle policies (Instance::lifecycle, issue #23): deletes an instance whose
// deadline passed, and stands by a Running instance whose VMM used almost no CPU for its
// idle_standby_s (a later restore brings it back). forkd runs one, ticking every second; tests tick
// it by hand under an advanceable clock and a CPU-time reader of their own.
//
// Idleness: the keeper reads each watched VMM's CPU time when it starts watching it and then once a
// window (at the first tick `window` or more after the last reading), and judges each window: one in
// which it used more than `busy_fraction` of one CPU makes it busy at the window's end. Windows, not
// ticks: /proc counts CPU time in 10 ms clock ticks, so over one second an idle VMM's 1-2% reads as
// anything from 1% to 3% (a TCG guest, measured), while over 5 s the error is 0.2%. Stood by at the
// end of a window once it was not busy for idle_standby_s. What it watches is in memory: after a
// restart an instance's idle time counts anew (the deadline of a TTL is persisted, so a restart
// keeps it).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "base/clock.h"
#include "base/status.h"
#include "engine/engine.h"

namespace fe::engine {

// The CPU time a process has used, in nanoseconds.
using CpuTimeReader = std::function<Result<uint64_t>(pid_t pid)>;
// /proc/<pid>/stat's user and system time.
Result<uint64_t> ProcessCpuTime(pid_t pid);

struct LifecycleKeeperOptions {
  std::chrono::milliseconds interval{1000};  // between ticks of Start's thread
  double busy_fraction = 0.02;               // of one CPU, over a window
  std::chrono::milliseconds window{5000};    // over which CPU use is judged
};

class LifecycleKeeper {
 public:
  // `engine` and `clock` must outlive the keeper. An empty reader: ProcessCpuTime.
  LifecycleKeeper(Engine& engine, const Clock& clock, CpuTimeReader cpu_time = {}, LifecycleKeeperOptions options = {});
  ~LifecycleKeeper();  // stops the thread
  LifecycleKeeper(const LifecycleKeeper&) = delete;
  LifecycleKeeper& operator=(const LifecycleKeeper&) = delete;

  // Ticks every options.interval on a thread of its own until destroyed.
  void Start();
  // One pass: expires what is due, stands by what was idle long enough. Failures are logged; an
  // instance that failed is tried again at the next tick.
  void Tick();

 private:
  struct Watch {
    pid_t pid = 0;
    uint64_t window_cpu_ns = 0;  // its CPU time when the current window began
    Clock::SteadyPoint window_start;
    Clock::SteadyPoint busy;  // the end of the last window it was busy in (or when first watched)
  };
  void WatchIdleness(const Instance& instance, Clock::SteadyPoint now, std::map<std::string, Watch>& watched);

  Engine& engine_;
  const Clock& clock_;
  const CpuTimeReader cpu_time_;
  const LifecycleKeeperOptions options_;
  std::mutex tick_mutex_;
  std::map<std::string, Watch> watched_;  // by instance id; GUARDED_BY(tick_mutex_)
  std::mutex stop_mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // GUARDED_BY(stop_mutex_)
  std::thread thread_;
};

}  // namespace fe::engine
