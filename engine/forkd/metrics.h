// The daemon's metrics, rendered in the Prometheus text exposition format 0.0.4 for GET /v1/metrics.
//
// Kept deliberately small: counters and histograms the request path updates (forks, fork failures,
// fork latency and its phases, HTTP requests and their latency), and gauges computed at scrape time
// from the engine (instances by state, storage). One mutex guards everything; an update is a few map
// operations, far below the cost of the request that makes it.
//
// Threads: every method may be called concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/engine.h"
#include "engine/pools/pool.h"

namespace fe::engine::forkd {

// Cumulative buckets with upper bounds (seconds, or bytes for the byte histograms) and +Inf.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  // Appends <name>_bucket/_sum/_count lines; `labels` is empty or `key="value",...` without braces.
  void Render(std::string_view name, std::string_view labels, std::string* out) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); the last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Latency buckets shared by the fork and request histograms: 0.5 ms .. 10 s.
const std::vector<double>& LatencyBuckets();
// Buckets for pool acquires, which from a ready member take microseconds: 25 µs .. 10 s.
const std::vector<double>& AcquireBuckets();
// Buckets of a live fork's dirty bytes at pause: 0, 1 MiB .. 4 GiB.
const std::vector<double>& DirtyByteBuckets();

// What the pool gauges are computed from at scrape time.
struct PoolGauges {
  std::vector<engine::pools::PoolStatus> pools;
  int cpu_budget_vcpus = 0;
  int cpu_used_vcpus = 0;
  uint64_t memory_budget_bytes = 0;
  uint64_t memory_used_bytes = 0;
};

class Metrics {
 public:
  Metrics();

  void RecordFork(const engine::ForkOutcome& outcome);
  void RecordForkFailure(ErrorCode code);
  // `route` is the route pattern ("/v1/instances/{id}"), not the path, to keep label sets bounded.
  void RecordRequest(std::string_view method, std::string_view route, int status, double seconds);
  // One served acquire: from a ready member (`hit`) or forked on demand.
  void RecordPoolAcquire(bool hit, double seconds);
  // One finished refill fork of a pool member.
  void RecordPoolRefill(double seconds);

  // The exposition text. `instances`, `storage` and `pools` feed the gauges (storage may be an error
  // and pools absent: their gauges are then left out).
  std::string Render(const std::vector<engine::Instance>& instances, const Result<engine::StorageInfo>& storage,
                     const std::optional<PoolGauges>& pools = std::nullopt) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, uint64_t> forks_;          // result -> count
  std::map<std::string, uint64_t> fork_failures_;  // code -> count
  Histogram fork_duration_;
  std::map<std::string, Histogram> fork_phases_;  // phase -> histogram
  Histogram dirty_bytes_at_pause_;
  std::map<std::string, uint64_t> http_requests_;           // rendered label set -> count
  std::map<std::string, Histogram> http_duration_;          // route label set -> histogram
  std::map<std::string, Histogram> pool_acquire_duration_;  // result ("hit"/"miss") -> histogram
  Histogram pool_refill_duration_;
};

// `value` escaped for a label value (backslash, double quote, newline).
std::string EscapeLabelValue(std::string_view value);

}  // namespace fe::engine::forkd
