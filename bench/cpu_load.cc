#include "bench/cpu_load.h"

#include <cerrno>
#include <fstream>
#include <sstream>
#include <string>

namespace fe::bench {

CpuLoad::CpuLoad(int threads) {
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this] {
      volatile uint64_t spins = 0;
      while (!stop_.load(std::memory_order_relaxed)) spins = spins + 1;
    });
  }
}

CpuLoad::~CpuLoad() {
  stop_ = true;
  for (std::thread& thread : threads_) thread.join();
}

Result<CpuTimes> ReadCpuTimes() {
  std::ifstream stat("/proc/stat");
  std::string line;
  if (!stat || !std::getline(stat, line)) return Status::FromErrno(errno, "reading", "/proc/stat");
  std::istringstream fields(line);
  std::string label;
  fields >> label;
  uint64_t value = 0, total = 0, idle = 0;
  // user nice system idle iowait irq softirq steal (guest time is already inside user/nice)
  for (int i = 0; i < 8 && fields >> value; ++i) {
    total += value;
    if (i == 3 || i == 4) idle += value;
  }
  if (label != "cpu" || total == 0) return Status::Io("/proc/stat: unexpected first line '" + line + "'");
  return CpuTimes{.busy = total - idle, .total = total};
}

double BusyFraction(const CpuTimes& before, const CpuTimes& after) {
  if (after.total <= before.total) return 0;
  return static_cast<double>(after.busy - before.busy) / static_cast<double>(after.total - before.total);
}

}  // namespace fe::bench
