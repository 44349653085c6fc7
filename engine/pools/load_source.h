// Where the pools' refill throttle gets CPU load from: the fraction of CPU time that was busy between
// two calls. The host source reads /proc/stat (all CPUs); the cgroup source reads a cgroup v2
// cpu.stat (usage_usec over wall time times the CPUs the cgroup may use). Tests inject their own.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace fe::engine::pools {

// The fraction (0..1) of the host's (or cgroup's) CPU time that was busy since the previous call.
// The first call measures from the source's creation. When no time has passed (the counters did not
// move), the previous value is returned again (0 at first).
// Threads: one caller at a time.
class LoadSource {
 public:
  virtual ~LoadSource() = default;
  virtual Result<double> BusyFraction() = 0;
};

// /proc/stat (busy = total - idle - iowait, all CPUs), or the cgroup v2 directory `cgroup_dir`'s
// cpu.stat when it is set.
std::unique_ptr<LoadSource> MakeHostLoadSource(std::string cgroup_dir = {});

// The aggregate "cpu " line of /proc/stat, in clock ticks.
struct CpuTimes {
  uint64_t total = 0;
  uint64_t idle = 0;  // idle + iowait
};
// InvalidArgument naming what is wrong when there is no well-formed "cpu " line.
Result<CpuTimes> ParseProcStat(std::string_view text);
// Busy fraction between two samples; nullopt when no time passed (or the counters went backwards).
std::optional<double> BusyBetween(const CpuTimes& before, const CpuTimes& after);

// usage_usec of a cgroup v2 cpu.stat; InvalidArgument when it is missing.
Result<uint64_t> ParseCgroupUsageUsec(std::string_view cpu_stat);
// The CPUs a cgroup v2 cpu.max allows ("max 100000": nullopt, no limit; "50000 100000": 0.5).
Result<std::optional<double>> ParseCgroupCpuMax(std::string_view cpu_max);

}  // namespace fe::engine::pools
