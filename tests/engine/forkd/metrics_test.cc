#include "engine/forkd/metrics.h"

#include <gtest/gtest.h>

namespace fe::engine::forkd {
namespace {

bool Has(const std::string& text, const std::string& line) { return text.find(line) != std::string::npos; }

TEST(MetricsTest, HistogramBucketsAreCumulativeWithSumAndCount) {
  Histogram histogram({0.001, 0.01});
  histogram.Observe(0.0005);
  histogram.Observe(0.005);
  histogram.Observe(5);
  std::string out;
  histogram.Render("h", "phase=\"clone\"", &out);
  EXPECT_TRUE(Has(out, "h_bucket{phase=\"clone\",le=\"0.001\"} 1\n")) << out;
  EXPECT_TRUE(Has(out, "h_bucket{phase=\"clone\",le=\"0.01\"} 2\n")) << out;
  EXPECT_TRUE(Has(out, "h_bucket{phase=\"clone\",le=\"+Inf\"} 3\n")) << out;
  EXPECT_TRUE(Has(out, "h_count{phase=\"clone\"} 3\n")) << out;
  EXPECT_TRUE(Has(out, "h_sum{phase=\"clone\"} 5.0055\n")) << out;
}

TEST(MetricsTest, ForksFailuresRequestsAndGaugesAppearInTheExposition) {
  Metrics metrics;
  engine::ForkOutcome outcome;
  outcome.phases.clone_us = 700;
  outcome.phases.total_us = 1000;
  metrics.RecordFork(outcome);
  metrics.RecordForkFailure(ErrorCode::kBusy);
  metrics.RecordRequest("POST", "/v1/instances/{id}/fork", 201, 0.002);
  engine::Instance standby;
  standby.state = engine::InstanceState::kStandby;
  engine::StorageInfo storage{.backend = "reflink",
                              .root = "/r",
                              .selection_reason = "",
                              .volumes = 4,
                              .filesystem_bytes = 100,
                              .filesystem_free_bytes = 40};
  std::string text = metrics.Render({standby}, storage);
  for (const char* line :
       {"# TYPE forkengine_forks_total counter\n", "forkengine_forks_total{result=\"ok\"} 1\n",
        "forkengine_forks_total{result=\"error\"} 1\n", "forkengine_fork_failures_total{code=\"busy\"} 1\n",
        "# TYPE forkengine_fork_duration_seconds histogram\n",
        "forkengine_fork_duration_seconds_bucket{le=\"0.001\"} 1\n",
        "forkengine_fork_phase_seconds_bucket{phase=\"clone\",le=\"0.001\"} 1\n",
        "forkengine_http_requests_total{method=\"POST\",route=\"/v1/instances/{id}/fork\",status=\"201\"} 1\n",
        "forkengine_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/instances/{id}/fork\"} 1\n",
        "forkengine_instances{state=\"Standby\"} 1\n", "forkengine_instances{state=\"Running\"} 0\n",
        "forkengine_storage_volumes{backend=\"reflink\"} 4\n",
        "forkengine_storage_free_bytes{backend=\"reflink\"} 40\n"}) {
    EXPECT_TRUE(Has(text, line)) << line << "\n" << text;
  }
}

// Phases only some paths run are observed only for forks that ran them: a live fork's pre-flush and
// throttle, a source_pause "background" fork's background snapshot (and not its pre-flush, which it has not).
TEST(MetricsTest, PathSpecificPhasesAreObservedOnlyForForksOfThatPath) {
  Metrics metrics;
  engine::ForkOutcome standby_fork;
  standby_fork.phases.clone_us = 700;
  metrics.RecordFork(standby_fork);
  engine::ForkOutcome live_fork;
  live_fork.live = true;
  live_fork.phases.preflush_us = 5000;
  metrics.RecordFork(live_fork);
  engine::ForkOutcome no_pause_fork;
  no_pause_fork.live = true;
  no_pause_fork.phases.background_snapshot_us = 2'000'000;
  metrics.RecordFork(no_pause_fork);
  const std::string text = metrics.Render({}, engine::StorageInfo{});
  EXPECT_TRUE(Has(text, "forkengine_fork_phase_seconds_count{phase=\"clone\"} 3\n")) << text;
  EXPECT_TRUE(Has(text, "forkengine_fork_phase_seconds_count{phase=\"preflush\"} 1\n")) << text;
  EXPECT_TRUE(Has(text, "forkengine_fork_phase_seconds_count{phase=\"throttle\"} 1\n")) << text;
  EXPECT_TRUE(Has(text, "forkengine_fork_phase_seconds_count{phase=\"background_snapshot\"} 1\n")) << text;
  EXPECT_TRUE(Has(text, "forkengine_fork_phase_seconds_sum{phase=\"background_snapshot\"} 2\n")) << text;
}

TEST(MetricsTest, AThinPoolsDataAndMetadataUseAreGaugesNamingThePool) {
  engine::StorageInfo storage{.backend = "dm-thin",
                              .root = "/r",
                              .selection_reason = "",
                              .volumes = 2,
                              .filesystem_bytes = 100,
                              .filesystem_free_bytes = 40};
  storage.pool = storage::PoolUsage{.name = "forkengine",
                                    .data_used_bytes = 3 << 20,
                                    .data_total_bytes = 64 << 20,
                                    .metadata_used_bytes = 1 << 20,
                                    .metadata_total_bytes = 8 << 20,
                                    .fill_threshold = 0.9,
                                    .mode = "read-write"};
  std::string text = Metrics().Render({}, storage);
  for (const char* line :
       {"# TYPE forkengine_storage_pool_data_used_bytes gauge\n",
        "forkengine_storage_pool_data_used_bytes{backend=\"dm-thin\",pool=\"forkengine\"} 3145728\n",
        "forkengine_storage_pool_data_bytes{backend=\"dm-thin\",pool=\"forkengine\"} 67108864\n",
        "forkengine_storage_pool_metadata_used_bytes{backend=\"dm-thin\",pool=\"forkengine\"} 1048576\n",
        "forkengine_storage_pool_metadata_bytes{backend=\"dm-thin\",pool=\"forkengine\"} 8388608\n"}) {
    EXPECT_TRUE(Has(text, line)) << line << "\n" << text;
  }
  storage.pool.reset();
  EXPECT_FALSE(Has(Metrics().Render({}, storage), "forkengine_storage_pool_")) << "no pool, no pool gauges";
}

TEST(MetricsTest, PoolGaugesCountersAndHistogramsAppearInTheExposition) {
  Metrics metrics;
  metrics.RecordPoolAcquire(/*hit=*/true, 0.0002);
  metrics.RecordPoolAcquire(/*hit=*/false, 0.004);
  metrics.RecordPoolRefill(0.006);
  engine::pools::PoolStatus pool;
  pool.spec.name = "web";
  pool.ready = 7;
  pool.refilling = 2;
  pool.counters.hits = 40;
  pool.counters.misses = 3;
  std::string out = metrics.Render({}, Status::Io("no storage"),
                                   PoolGauges{.pools = {pool}, .cpu_budget_vcpus = 16, .cpu_used_vcpus = 9});
  EXPECT_TRUE(Has(out, "forkengine_pool_ready{pool=\"web\"} 7\n")) << out;
  EXPECT_TRUE(Has(out, "forkengine_pool_refilling{pool=\"web\"} 2\n")) << out;
  EXPECT_TRUE(Has(out, "forkengine_pool_hits_total{pool=\"web\"} 40\n")) << out;
  EXPECT_TRUE(Has(out, "forkengine_pool_misses_total{pool=\"web\"} 3\n")) << out;
  EXPECT_TRUE(Has(out, "forkengine_cpu_budget_vcpus 16\n")) << out;
  EXPECT_TRUE(Has(out, "forkengine_cpu_used_vcpus 9\n")) << out;
  EXPECT_TRUE(Has(out, "forkengine_pool_acquire_duration_seconds_bucket{result=\"hit\",le=\"0.00025\"} 1\n")) << out;
  EXPECT_TRUE(Has(out, "forkengine_pool_acquire_duration_seconds_count{result=\"miss\"} 1\n")) << out;
  EXPECT_TRUE(Has(out, "forkengine_pool_refill_duration_seconds_bucket{le=\"0.01\"} 1\n")) << out;
  EXPECT_TRUE(Has(out, "forkengine_pool_refill_duration_seconds_count 1\n")) << out;
}

TEST(MetricsTest, PoolGaugesAreLeftOutWithoutAPoolManager) {
  std::string out = Metrics().Render({}, Status::Io("no storage"));
  EXPECT_FALSE(Has(out, "forkengine_cpu_budget_vcpus")) << out;
  EXPECT_TRUE(Has(out, "forkengine_pool_acquire_duration_seconds_count{result=\"hit\"} 0\n")) << out;
}

TEST(MetricsTest, LabelValuesAreEscaped) { EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd"); }

}  // namespace
}  // namespace fe::engine::forkd
