// The daemon's metrics, kept with prometheus-cpp (Debian's prometheus-cpp-dev 1.0: its registry,
// counters, histograms and text serialiser) and rendered in the Prometheus text format 0.0.4 for
// GET /v1/metrics and the optional metrics listener (metrics_listener.h).
//
// Two kinds of series:
//   - kept: counters and histograms the request path updates (forks per fork by outcome, fork
//     requests by outcome, fork latency and the phases each fork ran, bytes shared and copied, HTTP
//     requests and their latency, pool acquires and refills) and forkengine_build_info. prometheus-cpp
//     keeps them lock-free per series.
//   - computed at scrape time from a ScrapeState the caller reads from the engine and pools
//     (instances by state, VM memory, storage, pools), so they are never stale.
//
// Threads: every method may be called concurrently.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include "base/status.h"
#include "engine/engine.h"
#include "engine/pools/pool.h"

namespace fe::engine::forkd {

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

// What the scrape-time gauges are computed from (storage may be an error and pools absent: their
// gauges are then left out).
struct ScrapeState {
  std::vector<engine::Instance> instances;
  Result<engine::StorageInfo> storage = Status::Internal("storage not read");
  std::optional<PoolGauges> pools;
};

// The engine's and pools' state now (pools may be null: no pool gauges).
ScrapeState ReadScrapeState(engine::Engine& engine, engine::pools::PoolManager* pools);

// The phases of `outcome` that ran, in seconds: a phase a fork's path does not have (the source's
// standby on a fork of a Standby source, the restore of a fork left in Standby, a live fork's
// pre-flush elsewhere) is not observed, so it cannot pull a percentile towards 0.
std::vector<std::pair<std::string_view, double>> PhasesThatRan(const engine::ForkOutcome& outcome);

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // One fork made: forks_total{outcome="ok"}, its latency, the phases it ran, its bytes.
  void RecordFork(const engine::ForkOutcome& outcome);
  // A fork request that failed with `code`: `forks` forks (the request's count; all or nothing) in
  // forks_total{outcome=code}, one request in fork_requests_total{outcome=code}.
  void RecordForkFailure(ErrorCode code, int forks);
  // A fork request that succeeded (its forks are counted by RecordFork).
  void RecordForkRequest();
  // `route` is the route pattern ("/v1/instances/{id}"), not the path, to keep label sets bounded.
  void RecordRequest(std::string_view method, std::string_view route, int status, double seconds);
  // One served acquire: from a ready member (`hit`) or forked on demand.
  void RecordPoolAcquire(bool hit, double seconds);
  // One finished refill fork of a pool member.
  void RecordPoolRefill(double seconds);

  // Every family: the kept ones, then the gauges computed from `state`.
  std::vector<prometheus::MetricFamily> Collect(const ScrapeState& state) const;
  // Collect, in the text exposition format 0.0.4.
  std::string Render(const ScrapeState& state) const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& forks_;
  prometheus::Family<prometheus::Counter>& fork_requests_;
  prometheus::Histogram& fork_duration_;
  prometheus::Family<prometheus::Histogram>& fork_phases_;
  prometheus::Histogram& dirty_bytes_at_pause_;
  prometheus::Counter& shared_bytes_;
  prometheus::Counter& copied_bytes_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Histogram>& http_duration_;
  prometheus::Family<prometheus::Histogram>& pool_acquire_duration_;
  prometheus::Histogram& pool_refill_duration_;
};

}  // namespace fe::engine::forkd
