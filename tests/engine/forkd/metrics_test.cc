#include "engine/forkd/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace fe::engine::forkd {
namespace {

bool Has(const std::string& text, const std::string& line) { return text.find(line) != std::string::npos; }

ScrapeState Scrape(std::vector<engine::Instance> instances, Result<engine::StorageInfo> storage,
                   std::optional<PoolGauges> pools = std::nullopt) {
  return ScrapeState{.instances = std::move(instances), .storage = std::move(storage), .pools = std::move(pools)};
}

std::vector<std::string_view> PhaseNames(const engine::ForkOutcome& outcome) {
  std::vector<std::string_view> names;
  for (const auto& [phase, seconds] : PhasesThatRan(outcome)) names.push_back(phase);
  std::sort(names.begin(), names.end());
  return names;
}

TEST(MetricsTest, ForksAreCountedPerForkByOutcomeAndRequestsSeparately) {
  Metrics metrics;
  engine::ForkOutcome outcome;
  outcome.phases.total_us = 1000;
  metrics.RecordForkRequest();
  metrics.RecordFork(outcome);
  metrics.RecordFork(outcome);
  // A request for 5 forks that failed as a whole: 5 forks not made, 1 request.
  metrics.RecordForkFailure(ErrorCode::kBusy, 5);
  const std::string text = metrics.Render(Scrape({}, Status::Io("no storage")));
  for (const char* line :
       {"# TYPE forkengine_forks_total counter\n", "forkengine_forks_total{outcome=\"ok\"} 2\n",
        "forkengine_forks_total{outcome=\"busy\"} 5\n", "forkengine_fork_requests_total{outcome=\"ok\"} 1\n",
        "forkengine_fork_requests_total{outcome=\"busy\"} 1\n", "forkengine_fork_duration_seconds_count 2\n",
        "forkengine_fork_duration_seconds_bucket{le=\"0.001\"} 2\n"}) {
    EXPECT_TRUE(Has(text, line)) << line << "\n" << text;
  }
}

TEST(MetricsTest, BuildInfoAndSharedAndCopiedBytesAreExposed) {
  Metrics metrics;
  engine::ForkOutcome reflinked;
  reflinked.shared_bytes = 10 << 20;
  engine::ForkOutcome copied;
  copied.copied_bytes = 4096;
  metrics.RecordFork(reflinked);
  metrics.RecordFork(copied);
  const std::string text = metrics.Render(Scrape({}, Status::Io("no storage")));
  EXPECT_TRUE(Has(text, "forkengine_build_info{version=\"" FE_VERSION "\"} 1\n")) << text;
  EXPECT_TRUE(Has(text, "forkengine_fork_shared_bytes_total 10485760\n")) << text;
  EXPECT_TRUE(Has(text, "forkengine_fork_copied_bytes_total 4096\n")) << text;
}

TEST(MetricsTest, RequestsInstancesAndStorageAppearInTheExposition) {
  Metrics metrics;
  metrics.RecordRequest("POST", "/v1/instances/{id}/fork", 201, 0.002);
  engine::Instance standby;
  standby.state = engine::InstanceState::kStandby;
  engine::StorageInfo storage{.backend = "reflink",
                              .root = "/r",
                              .selection_reason = "",
                              .volumes = 4,
                              .filesystem_bytes = 100,
                              .filesystem_free_bytes = 40};
  const std::string text = metrics.Render(Scrape({standby}, storage));
  for (const char* line :
       {"forkengine_http_requests_total{method=\"POST\",route=\"/v1/instances/{id}/fork\",status=\"201\"} 1\n",
        "forkengine_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/instances/{id}/fork\"} 1\n",
        "forkengine_instances{state=\"Standby\"} 1\n", "forkengine_instances{state=\"Running\"} 0\n",
        "forkengine_storage_volumes{backend=\"reflink\"} 4\n",
        "forkengine_storage_free_bytes{backend=\"reflink\"} 40\n"}) {
    EXPECT_TRUE(Has(text, line)) << line << "\n" << text;
  }
}

// A phase a fork's path does not have is not observed as 0, which would pull percentiles down.
TEST(MetricsTest, OnlyThePhasesAForkRanAreObserved) {
  engine::ForkOutcome standby_to_standby;  // of a Standby source, left in Standby: no pause, no restore
  standby_to_standby.phases.clone_us = 700;
  EXPECT_EQ(PhaseNames(standby_to_standby),
            (std::vector<std::string_view>{"clone", "lock_wait", "metadata", "rewrite"}));

  engine::ForkOutcome restored;  // brought to Running, its guest given its identity
  restored.phases.restore_us = 90'000;
  restored.phases.identity_us = 20'000;
  EXPECT_EQ(PhaseNames(restored),
            (std::vector<std::string_view>{"clone", "identity", "lock_wait", "metadata", "restore", "rewrite"}));

  engine::ForkOutcome full_path;  // from_running through a standby of the source
  full_path.phases.source_standby_us = 300'000;
  EXPECT_EQ(PhaseNames(full_path),
            (std::vector<std::string_view>{"clone", "lock_wait", "metadata", "rewrite", "source_standby"}));

  engine::ForkOutcome live;  // the live path: its pre-flush and throttle count even at 0
  live.live = true;
  live.phases.source_pause_us = 40'000;
  EXPECT_EQ(PhaseNames(live), (std::vector<std::string_view>{"clone", "lock_wait", "metadata", "preflush", "rewrite",
                                                             "source_pause", "throttle"}));

  engine::ForkOutcome background;  // source_pause "background": no pre-flush there
  background.live = true;
  background.phases.source_pause_us = 5'000;
  background.phases.background_snapshot_us = 2'000'000;
  background.phases.filesystems_frozen_us = 4'000;
  EXPECT_EQ(PhaseNames(background),
            (std::vector<std::string_view>{"background_snapshot", "clone", "filesystems_frozen", "lock_wait",
                                           "metadata", "rewrite", "source_pause"}));
}

TEST(MetricsTest, PhaseHistogramsCountOnlyTheForksThatRanThePhase) {
  Metrics metrics;
  engine::ForkOutcome standby_fork;
  standby_fork.phases.clone_us = 700;
  metrics.RecordFork(standby_fork);
  engine::ForkOutcome restored;
  restored.phases.restore_us = 2'000'000;
  metrics.RecordFork(restored);
  const std::string text = metrics.Render(Scrape({}, engine::StorageInfo{}));
  EXPECT_TRUE(Has(text, "forkengine_fork_phase_seconds_count{phase=\"clone\"} 2\n")) << text;
  EXPECT_TRUE(Has(text, "forkengine_fork_phase_seconds_count{phase=\"restore\"} 1\n")) << text;
  EXPECT_TRUE(Has(text, "forkengine_fork_phase_seconds_sum{phase=\"restore\"} 2\n")) << text;
  EXPECT_TRUE(Has(text, "forkengine_fork_phase_seconds_count{phase=\"source_pause\"} 0\n")) << text;
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
  const std::string text = Metrics().Render(Scrape({}, storage));
  for (const char* line :
       {"# TYPE forkengine_storage_pool_data_used_bytes gauge\n",
        "forkengine_storage_pool_data_used_bytes{backend=\"dm-thin\",pool=\"forkengine\"} 3145728\n",
        "forkengine_storage_pool_data_bytes{backend=\"dm-thin\",pool=\"forkengine\"} 67108864\n",
        "forkengine_storage_pool_metadata_used_bytes{backend=\"dm-thin\",pool=\"forkengine\"} 1048576\n",
        "forkengine_storage_pool_metadata_bytes{backend=\"dm-thin\",pool=\"forkengine\"} 8388608\n"}) {
    EXPECT_TRUE(Has(text, line)) << line << "\n" << text;
  }
  storage.pool.reset();
  EXPECT_FALSE(Has(Metrics().Render(Scrape({}, storage)), "forkengine_storage_pool_")) << "no pool, no pool gauges";
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
  const std::string out = metrics.Render(
      Scrape({}, Status::Io("no storage"), PoolGauges{.pools = {pool}, .cpu_budget_vcpus = 16, .cpu_used_vcpus = 9}));
  for (const char* line :
       {"forkengine_pool_ready{pool=\"web\"} 7\n", "forkengine_pool_refilling{pool=\"web\"} 2\n",
        "# TYPE forkengine_pool_hits_total counter\n", "forkengine_pool_hits_total{pool=\"web\"} 40\n",
        "forkengine_pool_misses_total{pool=\"web\"} 3\n", "forkengine_cpu_budget_vcpus 16\n",
        "forkengine_cpu_used_vcpus 9\n",
        "forkengine_pool_acquire_duration_seconds_bucket{result=\"hit\",le=\"0.00025\"} 1\n",
        "forkengine_pool_acquire_duration_seconds_count{result=\"miss\"} 1\n",
        "forkengine_pool_refill_duration_seconds_bucket{le=\"0.01\"} 1\n",
        "forkengine_pool_refill_duration_seconds_count 1\n"}) {
    EXPECT_TRUE(Has(out, line)) << line << "\n" << out;
  }
}

TEST(MetricsTest, PoolGaugesAreLeftOutWithoutAPoolManager) {
  const std::string out = Metrics().Render(Scrape({}, Status::Io("no storage")));
  EXPECT_FALSE(Has(out, "forkengine_cpu_budget_vcpus")) << out;
  EXPECT_TRUE(Has(out, "forkengine_pool_acquire_duration_seconds_count{result=\"hit\"} 0\n")) << out;
}

TEST(MetricsTest, LabelValuesFromUsersAreEscaped) {
  engine::pools::PoolStatus pool;
  pool.spec.name = "a\"b\\c\nd";
  const std::string out = Metrics().Render(Scrape({}, Status::Io("no storage"), PoolGauges{.pools = {pool}}));
  EXPECT_TRUE(Has(out, "forkengine_pool_ready{pool=\"a\\\"b\\\\c\\nd\"} 0\n")) << out;
}

}  // namespace
}  // namespace fe::engine::forkd
