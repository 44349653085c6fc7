#include "engine/lifecycle_keeper.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "engine/vm/process_stat.h"

namespace fe::engine {

Result<uint64_t> ProcessCpuTime(pid_t pid) {
  Result<vm::ProcStat> stat = vm::ReadProcStat(pid);
  if (!stat.ok()) return stat.status();
  static const uint64_t ticks_per_second = static_cast<uint64_t>(::sysconf(_SC_CLK_TCK));
  return stat->cpu_ticks * (1'000'000'000 / ticks_per_second);
}

LifecycleKeeper::LifecycleKeeper(Engine& engine, const Clock& clock, CpuTimeReader cpu_time,
                                 LifecycleKeeperOptions options)
    : engine_(engine),
      clock_(clock),
      cpu_time_(cpu_time ? std::move(cpu_time) : CpuTimeReader(ProcessCpuTime)),
      options_(options) {}

LifecycleKeeper::~LifecycleKeeper() {
  {
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void LifecycleKeeper::Start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(stop_mutex_);
    while (!wake_.wait_for(lock, options_.interval, [this] { return stopping_; })) {
      lock.unlock();
      Tick();
      lock.lock();
    }
  });
}

void LifecycleKeeper::Tick() {
  std::lock_guard lock(tick_mutex_);
  const std::string now_wall = clock_.WallNowRfc3339();
  const Clock::SteadyPoint now = clock_.Now();
  std::map<std::string, Watch> watched;
  InstanceQuery with_policy;
  with_policy.with_policy = true;
  for (const Instance& instance : engine_.List(with_policy).instances) {
    // RFC 3339 UTC with milliseconds, one format: compared as text.
    if (!instance.lifecycle.expires_at.empty() && instance.lifecycle.expires_at <= now_wall) {
      if (Status expired = engine_.Expire(instance.id); !expired.ok()) {
        spdlog::warn("lifecycle: expiring {}: {}", instance.id, expired.ToString());
      }
      continue;
    }
    if (instance.state == InstanceState::kRunning && instance.process && instance.lifecycle.idle_standby_s > 0) {
      WatchIdleness(instance, now, watched);
    }
  }
  watched_ = std::move(watched);  // instances no longer Running or watched are forgotten
}

void LifecycleKeeper::WatchIdleness(const Instance& instance, Clock::SteadyPoint now,
                                    std::map<std::string, Watch>& watched) {
  auto known = watched_.find(instance.id);
  const bool new_vmm = known == watched_.end() || known->second.pid != instance.process->pid;
  if (!new_vmm && now - known->second.window_start < options_.window) {  // read and judged when its window ends
    watched[instance.id] = known->second;
    return;
  }
  Result<uint64_t> cpu_ns = cpu_time_(instance.process->pid);
  if (!cpu_ns.ok()) return;  // its process just went: the engine will see it
  if (new_vmm) {
    watched[instance.id] = Watch{instance.process->pid, *cpu_ns, now, now};  // its idle time starts
    return;
  }
  Watch watch = known->second;
  const double window_ns = std::chrono::duration<double, std::nano>(now - watch.window_start).count();
  const bool busy = *cpu_ns < watch.window_cpu_ns ||
                    static_cast<double>(*cpu_ns - watch.window_cpu_ns) > options_.busy_fraction * window_ns;
  if (busy) watch.busy = now;
  watch.window_start = now;
  watch.window_cpu_ns = *cpu_ns;
  const auto idle = std::chrono::duration_cast<std::chrono::seconds>(now - watch.busy);
  if (idle.count() >= instance.lifecycle.idle_standby_s) {
    Result<Instance> stood_by = engine_.StandbyIdle(instance.id, idle.count());
    if (stood_by.ok()) return;
    spdlog::warn("lifecycle: idle standby of {}: {}", instance.id, stood_by.status().ToString());
  }
  watched[instance.id] = watch;
}

}  // namespace fe::engine
