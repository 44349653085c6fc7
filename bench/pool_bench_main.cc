// forkbench-pool: acquire latency and throughput from a warm pool through forkd's API over its Unix
// socket, and the pool's refill under a synthetic CPU load (issue #6).
//
//   forkbench-pool [--pool-size 300] [--sequential 200] [--threads 4] [--burst 250]
//                  [--busy-threshold 0.9] [--load-threads 2xcores] [--window-s 3] [--forkd PATH]
//
// Starts a real forkd on a temporary data root on a loop-mounted XFS (root needed), imports a sample
// Cloud Hypervisor standby instance (engine/forkctl/sample_instance.h), creates two pools of it and waits
// until both are full: "bench" (minimum 0, maximum --pool-size), whose growth waits while acquires are
// served (forkd's --acquire-quiet-ms), and "bench-min" (minimum = maximum = --pool-size), where every
// acquire starts a refill at once. Then measures:
//   1. sequential acquires from "bench", one keep-alive client: forkd's latency_us and the client
//      round trip, p50/p99 (target: p99 < 1 ms at the daemon);
//   2. acquires per second from "bench-min" with --threads keep-alive clients, every one of them
//      beside refills (target >= 1000/s), and their latency there;
//   3. refills of "bench" started within --window-s after taking members out, without and with
//      --load-threads busy-loop threads pushing /proc/stat above --busy-threshold (target: zero under
//      load).
// Everything is removed at the end. A benchmark: it prints numbers against targets and never fails
// on them.
#include <fmt/format.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/cpu_load.h"
#include "bench/forkd_daemon.h"
#include "bench/interrupt.h"
#include "bench/latency_summary.h"
#include "bench/pool_api.h"
#include "bench/forkd_bench_site.h"

namespace fe::bench {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
constexpr const char* kPool = "bench";
constexpr const char* kAtMinimum = "bench-min";

struct Options {
  std::string forkd = FE_FORKD_BINARY;
  int pool_size = 300;
  int sequential = 200;
  int threads = 4;
  int burst = 250;
  double busy_threshold = 0.9;
  int load_threads = 2 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int window_s = 3;
  int max_parallel_refills = 2;
};

const char* Verdict(bool held) { return held ? "HELD" : "MISSED"; }

Status Sequential(PoolApi& api, const Options& options) {
  Result<PoolCounts> before = api.Counts(kPool);
  if (!before.ok()) return before.status();
  std::vector<double> server_ms, client_ms;
  int hits = 0, refused = 0;
  for (int i = 0; i < options.sequential; ++i) {
    FE_RETURN_IF_ERROR(CheckInterrupted());
    AcquireSample sample = api.Acquire(kPool, fmt::format("seq-{}", i), /*no_wait=*/true);
    if (sample.status == 503) {
      ++refused;
      continue;
    }
    if (sample.status != 200) return Status::Internal(fmt::format("acquire {}: HTTP {}", i, sample.status));
    hits += sample.hit ? 1 : 0;
    server_ms.push_back(static_cast<double>(sample.server_us) / 1e3);
    client_ms.push_back(static_cast<double>(sample.round_trip_ns) / 1e6);
  }
  Result<PoolCounts> after = api.Counts(kPool);
  if (!after.ok()) return after.status();
  // ready + refilling rises by one per refill started and falls by one per hit.
  int refills = (after->ready + after->refilling) - (before->ready + before->refilling) + hits;
  double server_p99 = Percentile(server_ms, 0.99);
  std::printf(
      "\n1. sequential acquires from '%s', one keep-alive client: %d acquired (%d hits), %d refused (503), "
      "%d refills started meanwhile\n",
      kPool, static_cast<int>(server_ms.size()), hits, refused, refills);
  std::printf("   %-26s %9s %9s %9s\n", "", "p50 ms", "p99 ms", "max ms");
  std::printf("   %-26s %9.3f %9.3f %9.3f\n", "forkd (latency_us)", Percentile(server_ms, 0.5), server_p99,
              Percentile(server_ms, 1.0));
  std::printf("   %-26s %9.3f %9.3f %9.3f\n", "client round trip", Percentile(client_ms, 0.5),
              Percentile(client_ms, 0.99), Percentile(client_ms, 1.0));
  std::printf("   target: p99 < 1 ms at the daemon: %s (%.3f ms)\n", Verdict(server_p99 < 1.0), server_p99);
  return Status::Ok();
}

Status Throughput(const std::string& socket, PoolApi& api, const Options& options) {
  Result<PoolCounts> before = api.Counts(kAtMinimum);
  if (!before.ok()) return before.status();
  std::atomic<int> next{0}, acquired{0}, hits{0}, refused{0}, failed{0};
  std::vector<std::vector<double>> server_ms(options.threads);
  std::vector<std::thread> clients;
  Clock::time_point start = Clock::now();
  for (int t = 0; t < options.threads; ++t) {
    clients.emplace_back([&, t] {
      PoolApi client(socket);
      for (int i = next++; i < options.burst && !Interrupted(); i = next++) {
        AcquireSample sample = client.Acquire(kAtMinimum, fmt::format("burst-{}", i), /*no_wait=*/true);
        if (sample.status == 200) {
          ++acquired;
          server_ms[t].push_back(static_cast<double>(sample.server_us) / 1e3);
          hits += sample.hit ? 1 : 0;
        } else if (sample.status == 503) {
          ++refused;
        } else {
          ++failed;
        }
      }
    });
  }
  for (std::thread& client : clients) client.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  Result<PoolCounts> after = api.Counts(kAtMinimum);
  if (!after.ok()) return after.status();
  int refills = (after->ready + after->refilling) - (before->ready + before->refilling) + hits;
  double rate = static_cast<double>(acquired) / seconds;
  std::vector<double> all_ms;
  for (const std::vector<double>& samples : server_ms) all_ms.insert(all_ms.end(), samples.begin(), samples.end());
  std::printf(
      "\n2. %d acquires from '%s' (at its minimum: each starts a refill) by %d keep-alive clients: %d acquired "
      "(%d hits), %d refused (503), %d failed, in %.3f s\n",
      options.burst, kAtMinimum, options.threads, acquired.load(), hits.load(), refused.load(), failed.load(), seconds);
  std::printf(
      "   %.0f acquires/s; pool ready %d -> %d, %d refills started meanwhile; forkd latency_us p50 %.3f ms, "
      "p99 %.3f ms\n",
      rate, before->ready, after->ready, refills, Percentile(all_ms, 0.5), Percentile(all_ms, 0.99));
  std::printf("   target: >= 1000 acquires/s while the pool refills: %s\n", Verdict(rate >= 1000));
  return Status::Ok();
}

struct RefillWindow {
  int taken = 0;
  int refills = 0;
  double busy = 0;
  bool throttled_at_start = false;
};

// Takes `take` members out, then counts the refills started within the window.
Result<RefillWindow> MeasureRefills(PoolApi& api, const Options& options, int take, const std::string& prefix) {
  Result<PoolCounts> before = api.Counts(kPool);
  Result<CpuTimes> cpu_before = ReadCpuTimes();
  if (!before.ok()) return before.status();
  if (!cpu_before.ok()) return cpu_before.status();
  RefillWindow window;
  window.throttled_at_start = before->throttled;
  int hits = 0;
  for (int i = 0; i < take; ++i) {
    AcquireSample sample = api.Acquire(kPool, fmt::format("{}-{}", prefix, i), /*no_wait=*/true);
    window.taken += sample.status == 200 ? 1 : 0;
    hits += sample.status == 200 && sample.hit ? 1 : 0;
  }
  std::this_thread::sleep_for(std::chrono::seconds(options.window_s));
  Result<PoolCounts> after = api.Counts(kPool);
  Result<CpuTimes> cpu_after = ReadCpuTimes();
  if (!after.ok()) return after.status();
  if (!cpu_after.ok()) return cpu_after.status();
  window.refills = (after->ready + after->refilling) - (before->ready + before->refilling) + hits;
  window.busy = BusyFraction(*cpu_before, *cpu_after);
  return window;
}

// Waits (up to 15 s) until forkd's pool reports `throttled` as wanted; whether it did.
bool WaitThrottled(PoolApi& api, bool wanted) {
  for (Clock::time_point deadline = Clock::now() + std::chrono::seconds(15); Clock::now() < deadline;
       std::this_thread::sleep_for(std::chrono::milliseconds(50))) {
    Result<PoolCounts> counts = api.Counts(kPool);
    if (counts.ok() && counts->throttled == wanted) return true;
  }
  return false;
}

Status RefillUnderLoad(PoolApi& api, const Options& options) {
  const int take = std::min(50, options.pool_size);
  bool calm = WaitThrottled(api, false);
  Result<RefillWindow> unloaded = MeasureRefills(api, options, take, "calm");
  if (!unloaded.ok()) return unloaded.status();
  // Bounded: on a host that stays busy the throttle keeps the pool from refilling at all.
  Result<PoolCounts> refilled = api.WaitFull(kPool, options.pool_size, 60);
  if (!refilled.ok()) return refilled.status();
  Result<RefillWindow> loaded = Status::Internal("not run");
  bool throttled = false;
  {
    CpuLoad load(options.load_threads);
    throttled = WaitThrottled(api, true);
    loaded = MeasureRefills(api, options, take, "loaded");
  }
  if (!loaded.ok()) return loaded.status();
  std::printf("\n3. refills started within %d s after taking %d members (busy threshold %.2f)\n", options.window_s,
              take, options.busy_threshold);
  std::printf("   %-34s %8s %8s %10s %10s\n", "", "taken", "refills", "host busy", "throttled");
  std::printf("   %-34s %8d %8d %9.0f%% %10s\n", "unloaded", unloaded->taken, unloaded->refills, unloaded->busy * 100,
              unloaded->throttled_at_start ? "yes" : "no");
  std::printf("   %-34s %8d %8d %9.0f%% %10s\n",
              fmt::format("loaded ({} busy-loop threads)", options.load_threads).c_str(), loaded->taken,
              loaded->refills, loaded->busy * 100, loaded->throttled_at_start ? "yes" : "no");
  if (!calm) std::printf("   note: the host stayed above the threshold before the unloaded window (other load)\n");
  if (!throttled) std::printf("   note: forkd did not report throttled within 15 s of starting the load\n");
  std::printf("   target: zero refills while the load is above the threshold: %s\n", Verdict(loaded->refills == 0));
  return Status::Ok();
}

Status Run(const Options& options) {
  FE_ASSIGN_OR_RETURN(std::unique_ptr<ForkdBenchSite> site, ForkdBenchSite::Create("forkbench-pool"));
  const std::string& socket = site->socket();

  Status status;
  {
    ForkdDaemon forkd;
    // Phases 1 and 2 run with the throttle off (threshold 1), so that other load on the host does not
    // keep the pool from filling; forkd is restarted with --busy-threshold for phase 3 (pools and
    // their members survive the restart).
    auto args = [&](double threshold) {
      return std::vector<std::string>{"--loop-pool",
                                      "none",
                                      "--cpu-budget",
                                      std::to_string(options.pool_size * 8 + 1000),
                                      "--busy-threshold",
                                      fmt::format("{}", threshold),
                                      "--max-parallel-refills",
                                      std::to_string(options.max_parallel_refills)};
    };
    FE_RETURN_IF_ERROR(forkd.Start(options.forkd, site->data_root(), socket, args(1.0), site->log()));
    std::printf("forkd on %s, socket %s, log %s\n", site->description().c_str(), socket.c_str(), site->log().c_str());
    status = [&]() -> Status {
      PoolApi api(socket);
      FE_RETURN_IF_ERROR(site->ImportSample(api, "template"));
      Clock::time_point fill_start = Clock::now();
      for (const auto& [name, min_size] : {std::pair{kPool, 0}, std::pair{kAtMinimum, options.pool_size}}) {
        Result<Json> pool = api.Post(
            "/v1/pools",
            Json{{"name", name}, {"template", "template"}, {"min_size", min_size}, {"max_size", options.pool_size}},
            201);
        if (!pool.ok()) return pool.status();
      }
      for (const char* name : {kPool, kAtMinimum}) {
        if (Result<PoolCounts> full = api.WaitFull(name, options.pool_size, 600); !full.ok()) return full.status();
      }
      double fill_s = std::chrono::duration<double>(Clock::now() - fill_start).count();
      std::printf("pools '%s' and '%s' of a %s standby template: 2 x %d ready after %.1f s (%.0f refills/s)\n", kPool,
                  kAtMinimum, "cloud-hypervisor", options.pool_size, fill_s, 2 * options.pool_size / fill_s);
      FE_RETURN_IF_ERROR(Sequential(api, options));
      if (Result<PoolCounts> refilled = api.WaitFull(kPool, options.pool_size, 600); !refilled.ok()) {
        return refilled.status();
      }
      FE_RETURN_IF_ERROR(Throughput(socket, api, options));
      if (Result<PoolCounts> refilled = api.WaitFull(kAtMinimum, options.pool_size, 600); !refilled.ok()) {
        return refilled.status();
      }
      FE_RETURN_IF_ERROR(forkd.Stop());
      FE_RETURN_IF_ERROR(
          forkd.Start(options.forkd, site->data_root(), socket, args(options.busy_threshold), site->log()));
      PoolApi restarted(socket);
      return RefillUnderLoad(restarted, options);
    }();
    Status stopped = forkd.Stop();
    if (status.ok()) status = stopped;
  }
  if (Status closed = site->Close(); status.ok()) status = closed;
  return status;
}

}  // namespace
}  // namespace fe::bench

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows line by line also when redirected
  fe::bench::Options options;
  CLI::App app{"forkbench-pool: acquire latency and refill throttling of forkd's pools (needs root)"};
  app.add_option("--forkd", options.forkd, "forkd binary")->capture_default_str();
  app.add_option("--pool-size", options.pool_size, "pool max_size")->check(CLI::Range(1, 5000))->capture_default_str();
  app.add_option("--sequential", options.sequential, "sequential acquires (phase 1)")
      ->check(CLI::Range(1, 5000))
      ->capture_default_str();
  app.add_option("--threads", options.threads, "client threads (phase 2)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--burst", options.burst, "acquires of phase 2")->check(CLI::Range(1, 5000))->capture_default_str();
  app.add_option("--busy-threshold", options.busy_threshold, "forkd --busy-threshold")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--load-threads", options.load_threads, "busy-loop threads of the synthetic load (phase 3)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--window-s", options.window_s, "seconds refills are counted after taking members (phase 3)")
      ->check(CLI::Range(1, 60))
      ->capture_default_str();
  app.add_option("--max-parallel-refills", options.max_parallel_refills, "forkd --max-parallel-refills")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  fe::Status status = fe::bench::Run(options);
  if (!status.ok()) {
    std::fprintf(stderr, "forkbench-pool: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
