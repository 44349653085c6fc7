#include "engine/forkd/metrics.h"

#include <prometheus/gauge.h>
#include <prometheus/text_serializer.h>

#include <map>
#include <utility>

#include "engine/forkd/memory_view.h"

#ifndef FE_VERSION
#error "FE_VERSION (the project's version) is defined by engine/forkd/CMakeLists.txt"
#endif

namespace fe::engine::forkd {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// Every phase a fork may have, so each histogram exists (count 0) before its first fork.
constexpr std::string_view kPhases[] = {"lock_wait",
                                        "source_standby",
                                        "source_pause",
                                        "preflush",
                                        "throttle",
                                        "clone",
                                        "background_snapshot",
                                        "filesystems_frozen",
                                        "huge_page_collapse",
                                        "rewrite",
                                        "metadata",
                                        "restore",
                                        "identity"};

double Seconds(int64_t micros) { return static_cast<double>(micros) / 1e6; }

prometheus::Family<prometheus::Gauge>& Gauges(prometheus::Registry& registry, const std::string& name,
                                              const std::string& help) {
  return BuildGauge().Name(name).Help(help).Register(registry);
}

void AddPoolGauges(const PoolGauges& gauges, prometheus::Registry& registry) {
  struct Series {
    const char* name;
    const char* help;
    bool counter;
    uint64_t (*value)(const engine::pools::PoolStatus&);
  };
  const Series kSeries[] = {
      {"forkengine_pool_ready", "Ready members of each pool.", false,
       [](const engine::pools::PoolStatus& pool) { return static_cast<uint64_t>(pool.ready); }},
      {"forkengine_pool_refilling", "Refill forks in flight for each pool.", false,
       [](const engine::pools::PoolStatus& pool) { return static_cast<uint64_t>(pool.refilling); }},
      {"forkengine_pool_hits_total", "Acquires served from a ready member.", true,
       [](const engine::pools::PoolStatus& pool) { return pool.counters.hits; }},
      {"forkengine_pool_misses_total", "Acquires that found the pool empty (forked on demand or refused).", true,
       [](const engine::pools::PoolStatus& pool) { return pool.counters.misses; }},
  };
  for (const Series& series : kSeries) {
    if (series.counter) {
      auto& family = BuildCounter().Name(series.name).Help(series.help).Register(registry);
      for (const auto& pool : gauges.pools) {
        family.Add({{"pool", pool.spec.name}}).Increment(static_cast<double>(series.value(pool)));
      }
    } else {
      auto& family = Gauges(registry, series.name, series.help);
      for (const auto& pool : gauges.pools) {
        family.Add({{"pool", pool.spec.name}}).Set(static_cast<double>(series.value(pool)));
      }
    }
  }
  Gauges(registry, "forkengine_cpu_budget_vcpus", "vCPUs pool members and running instances may use together.")
      .Add({})
      .Set(gauges.cpu_budget_vcpus);
  Gauges(registry, "forkengine_cpu_used_vcpus", "vCPUs counted against the budget (pool members, running instances).")
      .Add({})
      .Set(gauges.cpu_used_vcpus);
  Gauges(registry, "forkengine_memory_budget_bytes",
         "Private memory Running pool members and running instances may hold together.")
      .Add({})
      .Set(static_cast<double>(gauges.memory_budget_bytes));
  Gauges(registry, "forkengine_memory_used_bytes",
         "Private memory counted against the budget (measured; members not yet measured estimated).")
      .Add({})
      .Set(static_cast<double>(gauges.memory_used_bytes));
}

// Instances by state, and host totals of what Running instances' processes hold (memory_view.h):
// PSS summed is what they cost together, shared pages counted once.
void AddInstanceGauges(const std::vector<engine::Instance>& instances, prometheus::Registry& registry) {
  std::map<std::string, uint64_t> by_state;
  for (engine::InstanceState state : {engine::InstanceState::kCreating, engine::InstanceState::kStopped,
                                      engine::InstanceState::kStandby, engine::InstanceState::kRunning}) {
    by_state[std::string(engine::InstanceStateName(state))] = 0;
  }
  vm::ProcessMemory total;
  uint64_t measured = 0;
  uint64_t shared_memory = 0;
  for (const engine::Instance& instance : instances) {
    ++by_state[std::string(engine::InstanceStateName(instance.state))];
    if (instance.shared_memory) ++shared_memory;
    std::optional<vm::ProcessMemory> memory = ResidentMemory(instance);
    if (!memory) continue;
    ++measured;
    total.rss_bytes += memory->rss_bytes;
    total.pss_bytes += memory->pss_bytes;
    total.anonymous_bytes += memory->anonymous_bytes;
    total.private_bytes += memory->private_bytes;
    total.shared_bytes += memory->shared_bytes;
  }
  auto& states = Gauges(registry, "forkengine_instances", "Instances by state.");
  for (const auto& [state, count] : by_state) states.Add({{"state", state}}).Set(static_cast<double>(count));
  auto& memory = Gauges(registry, "forkengine_vm_memory_bytes",
                        "Memory of the running instances' hypervisor processes, summed (kind: rss, pss, private "
                        "(mapped by no other process), anonymous, shared).");
  for (const auto& [kind, value] : {std::pair<const char*, uint64_t>{"rss", total.rss_bytes},
                                    {"pss", total.pss_bytes},
                                    {"private", total.private_bytes},
                                    {"anonymous", total.anonymous_bytes},
                                    {"shared", total.shared_bytes}}) {
    memory.Add({{"kind", kind}}).Set(static_cast<double>(value));
  }
  Gauges(registry, "forkengine_vm_memory_measured_instances", "Running instances whose memory the totals include.")
      .Add({})
      .Set(static_cast<double>(measured));
  Gauges(registry, "forkengine_instances_shared_memory", "Instances whose RAM maps another instance's memory file.")
      .Add({})
      .Set(static_cast<double>(shared_memory));
}

void AddStorageGauges(const engine::StorageInfo& storage, prometheus::Registry& registry) {
  const prometheus::Labels backend{{"backend", storage.backend}};
  Gauges(registry, "forkengine_storage_volumes", "Volumes in the storage backend.")
      .Add(backend)
      .Set(static_cast<double>(storage.volumes));
  Gauges(registry, "forkengine_storage_filesystem_bytes", "Size of the filesystem holding the volumes.")
      .Add(backend)
      .Set(static_cast<double>(storage.filesystem_bytes));
  Gauges(registry, "forkengine_storage_free_bytes", "Free bytes of the filesystem holding the volumes.")
      .Add(backend)
      .Set(static_cast<double>(storage.filesystem_free_bytes));
  if (!storage.pool) return;
  const storage::PoolUsage& pool = *storage.pool;
  const prometheus::Labels labels{{"backend", storage.backend}, {"pool", pool.name}};
  const std::pair<const char*, uint64_t> gauges[] = {
      {"forkengine_storage_pool_data_used_bytes", pool.data_used_bytes},
      {"forkengine_storage_pool_data_bytes", pool.data_total_bytes},
      {"forkengine_storage_pool_metadata_used_bytes", pool.metadata_used_bytes},
      {"forkengine_storage_pool_metadata_bytes", pool.metadata_total_bytes}};
  for (const auto& [name, value] : gauges) {
    Gauges(registry, name, "The thin pool the volumes draw from (dm-thin): data and metadata, used and total.")
        .Add(labels)
        .Set(static_cast<double>(value));
  }
}

}  // namespace

ScrapeState ReadScrapeState(engine::Engine& engine, engine::pools::PoolManager* pools) {
  ScrapeState state{.instances = engine.List(), .storage = engine.Storage(), .pools = std::nullopt};
  if (pools != nullptr) {
    state.pools = PoolGauges{.pools = pools->List(),
                             .cpu_budget_vcpus = pools->cpu_budget_vcpus(),
                             .cpu_used_vcpus = pools->cpu_used_vcpus(),
                             .memory_budget_bytes = pools->memory_budget_bytes(),
                             .memory_used_bytes = pools->memory_used_bytes()};
  }
  return state;
}

std::vector<std::pair<std::string_view, double>> PhasesThatRan(const engine::ForkOutcome& outcome) {
  const engine::ForkPhases& phases = outcome.phases;
  // Every fork waits for its source's lock (often 0 µs: a real observation), clones, rewrites and
  // writes its metadata.
  std::vector<std::pair<std::string_view, double>> ran = {{"lock_wait", Seconds(phases.lock_wait_us)},
                                                          {"clone", Seconds(phases.clone_us)},
                                                          {"rewrite", Seconds(phases.rewrite_us)},
                                                          {"metadata", Seconds(phases.metadata_us)}};
  // The others take milliseconds when they run (a standby, a pause, a restore, a guest agent's
  // answer), so 0 means the fork's path has no such phase.
  const std::pair<std::string_view, int64_t> when_run[] = {{"source_standby", phases.source_standby_us},
                                                           {"source_pause", phases.source_pause_us},
                                                           {"background_snapshot", phases.background_snapshot_us},
                                                           {"filesystems_frozen", phases.filesystems_frozen_us},
                                                           {"huge_page_collapse", phases.huge_page_collapse_us},
                                                           {"restore", phases.restore_us},
                                                           {"identity", phases.identity_us}};
  for (const auto& [phase, micros] : when_run) {
    if (micros > 0) ran.emplace_back(phase, Seconds(micros));
  }
  // The live path's pre-flush and throttle run for every live fork that was not a background one;
  // 0 there is what they took (nothing to write back, no throttle needed).
  if (outcome.live && phases.background_snapshot_us == 0) {
    ran.emplace_back("preflush", Seconds(phases.preflush_us));
    ran.emplace_back("throttle", Seconds(phases.throttle_us));
  }
  return ran;
}

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double> kBuckets{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
  return kBuckets;
}

const std::vector<double>& AcquireBuckets() {
  static const std::vector<double> kBuckets{.000025, .00005, .0001, .00025, .0005, .001, .0025, .005,
                                            .01,     .025,   .05,   .1,     .25,   .5,   1,     10};
  return kBuckets;
}

const std::vector<double>& DirtyByteBuckets() {
  static const std::vector<double> kBuckets{0,        1 << 20,   4 << 20, 16 << 20,
                                            64 << 20, 256 << 20, 1 << 30, 4.0 * (1 << 30)};
  return kBuckets;
}

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      forks_(BuildCounter()
                 .Name("forkengine_forks_total")
                 .Help("Forks by outcome: ok, or the error code of the request that failed them (all of its count).")
                 .Register(*registry_)),
      fork_requests_(BuildCounter()
                         .Name("forkengine_fork_requests_total")
                         .Help("Fork requests by outcome: ok, or their error code.")
                         .Register(*registry_)),
      fork_duration_(BuildHistogram()
                         .Name("forkengine_fork_duration_seconds")
                         .Help("Time of one fork, from admission to its target state.")
                         .Register(*registry_)
                         .Add({}, LatencyBuckets())),
      fork_phases_(BuildHistogram()
                       .Name("forkengine_fork_phase_seconds")
                       .Help("Time of each phase of a fork, observed only for forks whose path has the phase.")
                       .Register(*registry_)),
      dirty_bytes_at_pause_(
          BuildHistogram()
              .Name("forkengine_live_fork_dirty_bytes_at_pause")
              .Help("Dirty bytes of a live fork source's RAM file when it was paused (what the pause wrote back).")
              .Register(*registry_)
              .Add({}, DirtyByteBuckets())),
      shared_bytes_(BuildCounter()
                        .Name("forkengine_fork_shared_bytes_total")
                        .Help("Logical bytes of files forks cloned by reference: shared with their source, not copied "
                              "(0 for btrfs and dm-thin snapshots, which do not walk the tree).")
                        .Register(*registry_)
                        .Add({})),
      copied_bytes_(BuildCounter()
                        .Name("forkengine_fork_copied_bytes_total")
                        .Help("Data bytes forks actually wrote (the sparse-copy fallback; holes excluded).")
                        .Register(*registry_)
                        .Add({})),
      http_requests_(BuildCounter()
                         .Name("forkengine_http_requests_total")
                         .Help("HTTP requests by method, route and status.")
                         .Register(*registry_)),
      http_duration_(BuildHistogram()
                         .Name("forkengine_http_request_duration_seconds")
                         .Help("HTTP request latency by method and route.")
                         .Register(*registry_)),
      pool_acquire_duration_(BuildHistogram()
                                 .Name("forkengine_pool_acquire_duration_seconds")
                                 .Help("Time of one pool acquire in the engine, by result (hit: a ready member, "
                                       "miss: forked on demand).")
                                 .Register(*registry_)),
      pool_refill_duration_(BuildHistogram()
                                .Name("forkengine_pool_refill_duration_seconds")
                                .Help("Time of one refill fork of a pool member.")
                                .Register(*registry_)
                                .Add({}, LatencyBuckets())) {
  BuildGauge()
      .Name("forkengine_build_info")
      .Help("forkd's version (the value is always 1).")
      .Register(*registry_)
      .Add({{"version", FE_VERSION}})
      .Set(1);
  forks_.Add({{"outcome", "ok"}});
  fork_requests_.Add({{"outcome", "ok"}});
  for (std::string_view phase : kPhases) fork_phases_.Add({{"phase", std::string(phase)}}, LatencyBuckets());
  for (const char* result : {"hit", "miss"}) pool_acquire_duration_.Add({{"result", result}}, AcquireBuckets());
}

Metrics::~Metrics() = default;

void Metrics::RecordFork(const engine::ForkOutcome& outcome) {
  forks_.Add({{"outcome", "ok"}}).Increment();
  fork_duration_.Observe(Seconds(outcome.phases.total_us));
  for (const auto& [phase, seconds] : PhasesThatRan(outcome)) {
    fork_phases_.Add({{"phase", std::string(phase)}}, LatencyBuckets()).Observe(seconds);
  }
  if (outcome.phases.dirty_bytes_at_pause) {
    dirty_bytes_at_pause_.Observe(static_cast<double>(*outcome.phases.dirty_bytes_at_pause));
  }
  shared_bytes_.Increment(static_cast<double>(outcome.shared_bytes));
  copied_bytes_.Increment(static_cast<double>(outcome.copied_bytes));
}

void Metrics::RecordForkFailure(ErrorCode code, int forks) {
  const std::string outcome(ErrorCodeName(code));
  forks_.Add({{"outcome", outcome}}).Increment(forks);
  fork_requests_.Add({{"outcome", outcome}}).Increment();
}

void Metrics::RecordForkRequest() { fork_requests_.Add({{"outcome", "ok"}}).Increment(); }

void Metrics::RecordRequest(std::string_view method, std::string_view route, int status, double seconds) {
  http_requests_
      .Add({{"method", std::string(method)}, {"route", std::string(route)}, {"status", std::to_string(status)}})
      .Increment();
  http_duration_.Add({{"method", std::string(method)}, {"route", std::string(route)}}, LatencyBuckets())
      .Observe(seconds);
}

void Metrics::RecordPoolAcquire(bool hit, double seconds) {
  pool_acquire_duration_.Add({{"result", hit ? "hit" : "miss"}}, AcquireBuckets()).Observe(seconds);
}

void Metrics::RecordPoolRefill(double seconds) { pool_refill_duration_.Observe(seconds); }

std::vector<prometheus::MetricFamily> Metrics::Collect(const ScrapeState& state) const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  prometheus::Registry scraped;
  if (state.pools) AddPoolGauges(*state.pools, scraped);
  AddInstanceGauges(state.instances, scraped);
  if (state.storage.ok()) AddStorageGauges(*state.storage, scraped);
  for (prometheus::MetricFamily& family : scraped.Collect()) families.push_back(std::move(family));
  return families;
}

std::string Metrics::Render(const ScrapeState& state) const {
  return prometheus::TextSerializer().Serialize(Collect(state));
}

}  // namespace fe::engine::forkd
