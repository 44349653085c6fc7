#include "engine/forkd/metrics.h"

#include "engine/forkd/memory_view.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace fe::engine::forkd {
namespace {

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

// The live path's pre-flush and throttle are observed only for live forks, the background snapshot
// and the guest filesystem freeze and huge page collapse only for forks that had one (source_pause "background"):
// elsewhere they did not run.
std::vector<std::pair<std::string_view, int64_t>> PhaseValues(const engine::ForkOutcome& outcome) {
  const engine::ForkPhases& phases = outcome.phases;
  std::vector<std::pair<std::string_view, int64_t>> values = {{"lock_wait", phases.lock_wait_us},
                                                              {"source_standby", phases.source_standby_us},
                                                              {"source_pause", phases.source_pause_us},
                                                              {"identity", phases.identity_us},
                                                              {"clone", phases.clone_us},
                                                              {"rewrite", phases.rewrite_us},
                                                              {"metadata", phases.metadata_us},
                                                              {"restore", phases.restore_us}};
  if (phases.background_snapshot_us > 0) {
    values.emplace_back("background_snapshot", phases.background_snapshot_us);
    if (phases.filesystems_frozen_us > 0) values.emplace_back("filesystems_frozen", phases.filesystems_frozen_us);
    if (phases.huge_page_collapse_us > 0) values.emplace_back("huge_page_collapse", phases.huge_page_collapse_us);
  } else if (outcome.live) {
    values.emplace_back("preflush", phases.preflush_us);
    values.emplace_back("throttle", phases.throttle_us);
  }
  return values;
}

void Header(std::string_view name, std::string_view type, std::string_view help, std::string* out) {
  fmt::format_to(std::back_inserter(*out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

std::string FormatNumber(double value) { return fmt::format("{}", value); }

void RenderPoolGauges(const PoolGauges& gauges, std::string* out) {
  struct Series {
    std::string_view name, type, help;
    uint64_t (*value)(const engine::pools::PoolStatus&);
  };
  const Series kSeries[] = {
      {"forkengine_pool_ready", "gauge", "Ready members of each pool.",
       [](const engine::pools::PoolStatus& pool) { return static_cast<uint64_t>(pool.ready); }},
      {"forkengine_pool_refilling", "gauge", "Refill forks in flight for each pool.",
       [](const engine::pools::PoolStatus& pool) { return static_cast<uint64_t>(pool.refilling); }},
      {"forkengine_pool_hits_total", "counter", "Acquires served from a ready member.",
       [](const engine::pools::PoolStatus& pool) { return pool.counters.hits; }},
      {"forkengine_pool_misses_total", "counter", "Acquires that found the pool empty (forked on demand or refused).",
       [](const engine::pools::PoolStatus& pool) { return pool.counters.misses; }},
  };
  for (const Series& series : kSeries) {
    Header(series.name, series.type, series.help, out);
    for (const engine::pools::PoolStatus& pool : gauges.pools) {
      fmt::format_to(std::back_inserter(*out), "{}{{pool=\"{}\"}} {}\n", series.name, EscapeLabelValue(pool.spec.name),
                     series.value(pool));
    }
  }
  Header("forkengine_cpu_budget_vcpus", "gauge", "vCPUs pool members and running instances may use together.", out);
  fmt::format_to(std::back_inserter(*out), "forkengine_cpu_budget_vcpus {}\n", gauges.cpu_budget_vcpus);
  Header("forkengine_cpu_used_vcpus", "gauge", "vCPUs counted against the budget (pool members, running instances).",
         out);
  fmt::format_to(std::back_inserter(*out), "forkengine_cpu_used_vcpus {}\n", gauges.cpu_used_vcpus);
  Header("forkengine_memory_budget_bytes", "gauge",
         "Private memory Running pool members and running instances may hold together.", out);
  fmt::format_to(std::back_inserter(*out), "forkengine_memory_budget_bytes {}\n", gauges.memory_budget_bytes);
  Header("forkengine_memory_used_bytes", "gauge",
         "Private memory counted against the budget (measured; members not yet measured estimated).", out);
  fmt::format_to(std::back_inserter(*out), "forkengine_memory_used_bytes {}\n", gauges.memory_used_bytes);
}

// Host totals of what Running instances' processes hold (memory_view.h), and how many map another
// instance's memory: PSS summed is what they cost together, shared pages counted once.
void RenderMemoryTotals(const std::vector<engine::Instance>& instances, std::string* out) {
  vm::ProcessMemory total;
  uint64_t measured = 0;
  uint64_t shared_memory = 0;
  for (const engine::Instance& instance : instances) {
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
  Header("forkengine_vm_memory_bytes", "gauge",
         "Memory of the running instances' hypervisor processes, summed (kind: rss, pss, private (mapped by no other "
         "process), anonymous, shared).",
         out);
  for (const auto& [kind, value] : {std::pair<const char*, uint64_t>{"rss", total.rss_bytes},
                                    {"pss", total.pss_bytes},
                                    {"private", total.private_bytes},
                                    {"anonymous", total.anonymous_bytes},
                                    {"shared", total.shared_bytes}}) {
    fmt::format_to(std::back_inserter(*out), "forkengine_vm_memory_bytes{{kind=\"{}\"}} {}\n", kind, value);
  }
  Header("forkengine_vm_memory_measured_instances", "gauge", "Running instances whose memory the totals include.", out);
  fmt::format_to(std::back_inserter(*out), "forkengine_vm_memory_measured_instances {}\n", measured);
  Header("forkengine_instances_shared_memory", "gauge", "Instances whose RAM maps another instance's memory file.",
         out);
  fmt::format_to(std::back_inserter(*out), "forkengine_instances_shared_memory {}\n", shared_memory);
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\\')
      escaped += "\\\\";
    else if (c == '"')
      escaped += "\\\"";
    else if (c == '\n')
      escaped += "\\n";
    else
      escaped += c;
  }
  return escaped;
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

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

void Histogram::Render(std::string_view name, std::string_view labels, std::string* out) const {
  std::string prefix = labels.empty() ? std::string() : std::string(labels) + ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    std::string le = i < bounds_.size() ? FormatNumber(bounds_[i]) : "+Inf";
    fmt::format_to(std::back_inserter(*out), "{}_bucket{{{}le=\"{}\"}} {}\n", name, prefix, le, cumulative);
  }
  std::string braces;
  if (!labels.empty()) braces = fmt::format("{{{}}}", labels);
  fmt::format_to(std::back_inserter(*out), "{}_sum{} {}\n{}_count{} {}\n", name, braces, FormatNumber(sum_), name,
                 braces, count_);
}

Metrics::Metrics()
    : forks_{{"ok", 0}, {"error", 0}},
      fork_duration_(LatencyBuckets()),
      dirty_bytes_at_pause_(DirtyByteBuckets()),
      pool_refill_duration_(LatencyBuckets()) {
  for (std::string_view phase : kPhases) fork_phases_.emplace(std::string(phase), Histogram(LatencyBuckets()));
  for (const char* result : {"hit", "miss"}) pool_acquire_duration_.emplace(result, Histogram(AcquireBuckets()));
}

void Metrics::RecordFork(const engine::ForkOutcome& outcome) {
  std::lock_guard lock(mutex_);
  ++forks_["ok"];
  fork_duration_.Observe(static_cast<double>(outcome.phases.total_us) / 1e6);
  for (const auto& [phase, micros] : PhaseValues(outcome)) {
    fork_phases_.at(std::string(phase)).Observe(static_cast<double>(micros) / 1e6);
  }
  if (outcome.phases.dirty_bytes_at_pause) {
    dirty_bytes_at_pause_.Observe(static_cast<double>(*outcome.phases.dirty_bytes_at_pause));
  }
}

void Metrics::RecordForkFailure(ErrorCode code) {
  std::lock_guard lock(mutex_);
  ++forks_["error"];
  ++fork_failures_[std::string(ErrorCodeName(code))];
}

void Metrics::RecordRequest(std::string_view method, std::string_view route, int status, double seconds) {
  std::string route_labels =
      fmt::format("method=\"{}\",route=\"{}\"", EscapeLabelValue(method), EscapeLabelValue(route));
  std::lock_guard lock(mutex_);
  ++http_requests_[fmt::format("{},status=\"{}\"", route_labels, status)];
  http_duration_.try_emplace(route_labels, LatencyBuckets()).first->second.Observe(seconds);
}

void Metrics::RecordPoolAcquire(bool hit, double seconds) {
  std::lock_guard lock(mutex_);
  pool_acquire_duration_.at(hit ? "hit" : "miss").Observe(seconds);
}

void Metrics::RecordPoolRefill(double seconds) {
  std::lock_guard lock(mutex_);
  pool_refill_duration_.Observe(seconds);
}

std::string Metrics::Render(const std::vector<engine::Instance>& instances, const Result<engine::StorageInfo>& storage,
                            const std::optional<PoolGauges>& pools) const {
  std::string out;
  {
    std::lock_guard lock(mutex_);
    Header("forkengine_forks_total", "counter", "Forks by result (one per fork instance made or per failed request).",
           &out);
    for (const auto& [result, count] : forks_) {
      fmt::format_to(std::back_inserter(out), "forkengine_forks_total{{result=\"{}\"}} {}\n", result, count);
    }
    Header("forkengine_fork_failures_total", "counter", "Failed fork requests by error code.", &out);
    for (const auto& [code, count] : fork_failures_) {
      fmt::format_to(std::back_inserter(out), "forkengine_fork_failures_total{{code=\"{}\"}} {}\n", code, count);
    }
    Header("forkengine_fork_duration_seconds", "histogram", "Time of one fork, from admission to its target state.",
           &out);
    fork_duration_.Render("forkengine_fork_duration_seconds", "", &out);
    Header("forkengine_fork_phase_seconds", "histogram", "Time of each phase of a fork.", &out);
    for (const auto& [phase, histogram] : fork_phases_) {
      histogram.Render("forkengine_fork_phase_seconds", fmt::format("phase=\"{}\"", phase), &out);
    }
    Header("forkengine_live_fork_dirty_bytes_at_pause", "histogram",
           "Dirty bytes of a live fork source's RAM file when it was paused (what the pause wrote back).", &out);
    dirty_bytes_at_pause_.Render("forkengine_live_fork_dirty_bytes_at_pause", "", &out);
    Header("forkengine_http_requests_total", "counter", "HTTP requests by method, route and status.", &out);
    for (const auto& [labels, count] : http_requests_) {
      fmt::format_to(std::back_inserter(out), "forkengine_http_requests_total{{{}}} {}\n", labels, count);
    }
    Header("forkengine_http_request_duration_seconds", "histogram", "HTTP request latency by method and route.", &out);
    for (const auto& [labels, histogram] : http_duration_) {
      histogram.Render("forkengine_http_request_duration_seconds", labels, &out);
    }
    Header("forkengine_pool_acquire_duration_seconds", "histogram",
           "Time of one pool acquire in the engine, by result (hit: a ready member, miss: forked on demand).", &out);
    for (const auto& [result, histogram] : pool_acquire_duration_) {
      histogram.Render("forkengine_pool_acquire_duration_seconds", fmt::format("result=\"{}\"", result), &out);
    }
    Header("forkengine_pool_refill_duration_seconds", "histogram", "Time of one refill fork of a pool member.", &out);
    pool_refill_duration_.Render("forkengine_pool_refill_duration_seconds", "", &out);
  }
  if (pools) RenderPoolGauges(*pools, &out);
  std::map<std::string, uint64_t> by_state;
  for (engine::InstanceState state : {engine::InstanceState::kCreating, engine::InstanceState::kStopped,
                                      engine::InstanceState::kStandby, engine::InstanceState::kRunning}) {
    by_state[std::string(engine::InstanceStateName(state))] = 0;
  }
  for (const engine::Instance& instance : instances) ++by_state[std::string(engine::InstanceStateName(instance.state))];
  Header("forkengine_instances", "gauge", "Instances by state.", &out);
  for (const auto& [state, count] : by_state) {
    fmt::format_to(std::back_inserter(out), "forkengine_instances{{state=\"{}\"}} {}\n", state, count);
  }
  RenderMemoryTotals(instances, &out);
  if (storage.ok()) {
    std::string backend = fmt::format("backend=\"{}\"", EscapeLabelValue(storage->backend));
    Header("forkengine_storage_volumes", "gauge", "Volumes in the storage backend.", &out);
    fmt::format_to(std::back_inserter(out), "forkengine_storage_volumes{{{}}} {}\n", backend, storage->volumes);
    Header("forkengine_storage_filesystem_bytes", "gauge", "Size of the filesystem holding the volumes.", &out);
    fmt::format_to(std::back_inserter(out), "forkengine_storage_filesystem_bytes{{{}}} {}\n", backend,
                   storage->filesystem_bytes);
    Header("forkengine_storage_free_bytes", "gauge", "Free bytes of the filesystem holding the volumes.", &out);
    fmt::format_to(std::back_inserter(out), "forkengine_storage_free_bytes{{{}}} {}\n", backend,
                   storage->filesystem_free_bytes);
    if (storage->pool) {
      const storage::PoolUsage& pool = *storage->pool;
      const std::string labels = backend + fmt::format(",pool=\"{}\"", EscapeLabelValue(pool.name));
      const std::pair<const char*, uint64_t> gauges[] = {
          {"forkengine_storage_pool_data_used_bytes", pool.data_used_bytes},
          {"forkengine_storage_pool_data_bytes", pool.data_total_bytes},
          {"forkengine_storage_pool_metadata_used_bytes", pool.metadata_used_bytes},
          {"forkengine_storage_pool_metadata_bytes", pool.metadata_total_bytes}};
      for (const auto& [name, value] : gauges) {
        Header(name, "gauge", "The thin pool the volumes draw from (dm-thin): data and metadata, used and total.",
               &out);
        fmt::format_to(std::back_inserter(out), "{}{{{}}} {}\n", name, labels, value);
      }
    }
  }
  return out;
}

}  // namespace fe::engine::forkd
