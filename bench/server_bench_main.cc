// forkbench-server: forkd's HTTP server under concurrent clients and idle connections (issue #15).
//
//   forkbench-server [--forkd PATH] [--forks-per-client 20] [--idle 1000] [--health 300]
//
// Starts a real forkd on a temporary data root on a loop-mounted XFS (root needed) and imports a
// sample Cloud Hypervisor standby instance (engine/forkctl/sample_instance.h). Then measures:
//   1. forks of the template through the API with 1, 10 and 50 concurrent keep-alive clients, each
//      making --forks-per-client forks one by one: forks per second and the client round trip
//      p50/p99 (the forks are deleted between the rounds, outside the timing);
//   2. GET /v1/healthz round trips (p50/p99/max) from one client with no other connection, then while
//      --idle connections are open on the socket and send nothing.
// --forkd runs another forkd binary, e.g. one built before the server was replaced, so the README
// can put both side by side. A benchmark: it prints numbers and never fails on them.
#include <fmt/format.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/unique_fd.h"
#include "bench/interrupt.h"
#include "bench/latency_summary.h"
#include "bench/pool_api.h"
#include "bench/forkd_bench_site.h"

namespace fe::bench {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

struct Options {
  std::string forkd = FE_FORKD_BINARY;
  int forks_per_client = 20;
  int idle = 1000;
  int health = 300;
};

// One round: `clients` threads, each with its own keep-alive connection, forking one by one.
Status ForkRound(const std::string& socket, int clients, const Options& options) {
  std::vector<std::vector<double>> latencies(static_cast<size_t>(clients));
  std::vector<Status> results(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  const Clock::time_point start = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      PoolApi api(socket);
      for (int i = 0; i < options.forks_per_client; ++i) {
        const Clock::time_point sent = Clock::now();
        Result<Json> fork =
            api.Post("/v1/instances/template/fork", Json{{"name", fmt::format("f-{}-{}-{}", clients, c, i)}}, 201);
        if (!fork.ok()) {
          results[static_cast<size_t>(c)] = fork.status();
          return;
        }
        latencies[static_cast<size_t>(c)].push_back(MillisSince(sent));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const double seconds = MillisSince(start) / 1000;
  for (const Status& result : results) FE_RETURN_IF_ERROR(result);
  std::vector<double> all;
  for (const auto& client : latencies) all.insert(all.end(), client.begin(), client.end());
  std::printf("   %7d %8zu %10.1f %10.2f %10.2f\n", clients, all.size(), static_cast<double>(all.size()) / seconds,
              Percentile(all, 0.5), Percentile(all, 0.99));
  // Cleanup, not timed.
  PoolApi api(socket);
  Result<Json> list = api.Get("/v1/instances");
  if (!list.ok()) return list.status();
  for (const Json& instance : (*list)["instances"]) {
    const std::string name = instance.value("name", "");
    if (name.rfind("f-", 0) != 0) continue;
    Result<Json> deleted = api.Delete("/v1/instances/" + name);
    if (!deleted.ok()) return deleted.status();
  }
  return Status::Ok();
}

// Connections that connect and then say nothing.
Result<std::vector<UniqueFd>> OpenIdleConnections(const std::string& socket, int count) {
  std::vector<UniqueFd> fds;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket.c_str(), socket.size() + 1);
  for (int i = 0; i < count; ++i) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return Status::FromErrno(errno, "socket", socket);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      return Status::FromErrno(errno, fmt::format("connect (idle connection {})", i + 1), socket);
    }
    fds.push_back(std::move(fd));
  }
  return fds;
}

void HealthRound(const std::string& socket, const std::string& label, const Options& options) {
  std::vector<double> latencies;
  int failed = 0;
  PoolApi api(socket);
  for (int i = 0; i < options.health; ++i) {
    const Clock::time_point sent = Clock::now();
    if (api.Get("/v1/healthz").ok()) {
      latencies.push_back(MillisSince(sent));
    } else {
      ++failed;
    }
  }
  std::printf("   %-38s %8zu %8d %10.2f %10.2f %10.2f\n", label.c_str(), latencies.size(), failed,
              Percentile(latencies, 0.5), Percentile(latencies, 0.99), Percentile(latencies, 1.0));
}

Status Measure(const std::string& socket, const Options& options) {
  PoolApi api(socket);
  std::printf("\n1. forks of a standby template through the API, %d per client, one by one\n",
              options.forks_per_client);
  std::printf("   %7s %8s %10s %10s %10s\n", "clients", "forks", "forks/s", "p50 ms", "p99 ms");
  for (int clients : {1, 10, 50}) {
    FE_RETURN_IF_ERROR(CheckInterrupted());
    FE_RETURN_IF_ERROR(ForkRound(socket, clients, options));
  }
  std::printf("\n2. GET /v1/healthz, %d round trips from one keep-alive client\n", options.health);
  std::printf("   %-38s %8s %8s %10s %10s %10s\n", "", "answered", "failed", "p50 ms", "p99 ms", "max ms");
  HealthRound(socket, "no other connection", options);
  {
    Result<std::vector<UniqueFd>> idle = OpenIdleConnections(socket, options.idle);
    if (!idle.ok()) {
      std::printf("   %-38s could not open them: %s\n", fmt::format("{} idle connections", options.idle).c_str(),
                  idle.status().ToString().c_str());
    } else {
      HealthRound(socket, fmt::format("{} idle connections open", options.idle), options);
    }
  }
  return Status::Ok();
}

Status Run(const Options& options) {
  FE_ASSIGN_OR_RETURN(std::unique_ptr<ForkdBenchSite> site, ForkdBenchSite::Create("forkbench-server"));
  std::printf("scratch filesystem %s\n", site->description().c_str());
  Status status =
      site->WithForkd(options.forkd, "template", [&](PoolApi&) { return Measure(site->socket(), options); });
  if (Status closed = site->Close(); status.ok()) status = closed;
  return status;
}

}  // namespace
}  // namespace fe::bench

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  fe::bench::Options options;
  CLI::App app{"forkbench-server: forkd's HTTP server under concurrent clients and idle connections (needs root)"};
  app.add_option("--forkd", options.forkd, "forkd binary")->capture_default_str();
  app.add_option("--forks-per-client", options.forks_per_client, "forks each client makes per round")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--idle", options.idle, "idle connections held open while health is measured")
      ->check(CLI::Range(0, 20000))
      ->capture_default_str();
  app.add_option("--health", options.health, "health round trips per measurement")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  fe::Status status = fe::bench::Run(options);
  if (!status.ok()) {
    std::fprintf(stderr, "forkbench-server: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
