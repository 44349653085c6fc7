// Synthetic CPU load for the pool benchmark (busy-loop threads), and the host's busy CPU fraction
// measured from /proc/stat the way forkd's refill throttle measures it (busy = total - idle - iowait).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "base/status.h"

namespace fe::bench {

// `threads` threads spinning until the object is destroyed.
class CpuLoad {
 public:
  explicit CpuLoad(int threads);
  ~CpuLoad();
  CpuLoad(const CpuLoad&) = delete;
  CpuLoad& operator=(const CpuLoad&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// Cumulative CPU jiffies of the first line of /proc/stat.
struct CpuTimes {
  uint64_t busy = 0;
  uint64_t total = 0;
};
Result<CpuTimes> ReadCpuTimes();
// Busy fraction (0..1) between two readings; 0 when no time passed.
double BusyFraction(const CpuTimes& before, const CpuTimes& after);

}  // namespace fe::bench
