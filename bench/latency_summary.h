// Latency samples summarised the way the forkd benchmarks print them: nearest-rank percentiles.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace fe::bench {

// The value at fraction `p` (0..1) of the sorted samples, nearest rank; 0 when there are none.
inline double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t index = static_cast<size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

inline double MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace fe::bench
