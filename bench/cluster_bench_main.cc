// forkbench-cluster: what the cluster layer (issue #22) costs and how fast it notices a death.
//
//   sudo forkbench-cluster [--forks 200] [--clients 8] [--creates-per-client 25] [--lease-ttl-s 2]
//
// Starts, on this machine: one etcd member (Debian's /usr/bin/etcd) on loopback, three forkd nodes
// (each its own data root on a loop-mounted XFS scratch, its TCP API on loopback with a token), and
// forkrouter in front of them. Then:
//   1. fork latency: the same Standby -> Standby fork of the sample instance, through the router and
//      straight to its node's Unix socket, interleaved; medians and p99, and the router's overhead
//      (the difference of the medians; target <= 1 ms);
//   2. placement throughput: `clients` concurrent clients create instances through the router with no
//      node named (placement by the index), creates/s and how they spread over the nodes;
//   3. replication: the sample imported as a template on n0 (whose CPU budget is 1 vCPU) beside a plain
//      import (the price of the template's file list), then a fork of two through the router, which
//      n0 has no room for: the template is replicated to another node and forked there (the time,
//      the bytes moved, MB/s), and the same fork again, which spills to the replica without a copy;
//   4. death to no placements: kill -9 of one node, then the time until the router's index has no
//      such node (its lease runs out: at most the TTL plus a renewal round), and a create after it.
#include <sys/socket.h>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "base/atomic_file.h"
#include "base/fs_util.h"
#include "bench/forkd_bench_site.h"
#include "bench/forkd_daemon.h"
#include "bench/interrupt.h"
#include "bench/latency_summary.h"
#include "bench/pool_api.h"

namespace fe::bench {
namespace {

using Json = nlohmann::json;

struct Options {
  int forks = 200;
  int clients = 8;
  int creates_per_client = 25;
  int lease_ttl_s = 2;
  int quorum_check_ms = 250;
  std::string forkd = FE_FORKD_BINARY;
  std::string forkrouter = FE_FORKROUTER_BINARY;
};

constexpr int kNodes = 3;

// A free TCP port on loopback (bound, read, released).
int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  ::close(fd);
  return port;
}

bool EtcdHealthy(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1, 0);
  httplib::Result health = client.Get("/health");
  return health && health->status == 200 && health->body.find("\"true\"") != std::string::npos;
}

struct Cluster {
  ForkdDaemon etcd;
  ForkdDaemon nodes[kNodes];
  ForkdDaemon router;
  std::string node_sockets[kNodes];
  std::string router_socket;
};

Status StartCluster(const ForkdBenchSite& site, const Options& options, Cluster& cluster) {
  const std::string dir = site.data_root() + "-cluster";
  FE_RETURN_IF_ERROR(MakeDirectories(dir, 0700));
  const int client_port = FreeLoopbackPort();
  const int peer_port = FreeLoopbackPort();
  const std::string etcd_url = "http://127.0.0.1:" + std::to_string(client_port);
  FE_RETURN_IF_ERROR(cluster.etcd.Launch(
      {"/usr/bin/etcd", "--name=bench", "--data-dir=" + dir + "/etcd", "--listen-client-urls=" + etcd_url,
       "--advertise-client-urls=" + etcd_url, "--listen-peer-urls=http://127.0.0.1:" + std::to_string(peer_port),
       "--initial-advertise-peer-urls=http://127.0.0.1:" + std::to_string(peer_port),
       "--initial-cluster=bench=http://127.0.0.1:" + std::to_string(peer_port)},
      dir + "/etcd.log", [client_port] { return EtcdHealthy(client_port); }));
  const std::string token = dir + "/token";
  FE_RETURN_IF_ERROR(ReplaceFileAtomically(token, "bench-token\n", 0600));
  for (int i = 0; i < kNodes; ++i) {
    const std::string name = "n" + std::to_string(i);
    cluster.node_sockets[i] = dir + "/" + name + ".sock";
    FE_RETURN_IF_ERROR(
        cluster.nodes[i].Start(options.forkd, site.data_root() + "/" + name, cluster.node_sockets[i],
                               {"--loop-pool", "none", "--cluster-etcd", etcd_url, "--cluster", "bench", "--node-name",
                                name, "--cluster-lease-ttl-s", std::to_string(options.lease_ttl_s), "--listen-tcp",
                                "127.0.0.1:" + std::to_string(FreeLoopbackPort()), "--token-file", token,
                                "--manage-taps", "off", "--subnet", "10.20" + std::to_string(i) + ".0.0/16",
                                // n0 holds the templates: no room for two forks at once (section 3).
                                "--cpu-budget", i == 0 ? "1" : "0"},
                               dir + "/" + name + ".log"));
  }
  cluster.router_socket = dir + "/router.sock";
  const std::string socket = cluster.router_socket;
  FE_RETURN_IF_ERROR(
      cluster.router.Launch({options.forkrouter, "--socket", socket, "--cluster-etcd", etcd_url, "--quorum-check-ms",
                             std::to_string(options.quorum_check_ms), "--cluster", "bench", "--node-token-file", token},
                            dir + "/router.log", [socket] { return ForkdDaemon::Healthy(socket); }));
  PoolApi router(cluster.router_socket);
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);;) {
    Result<Json> nodes = router.Get("/v1/nodes");
    if (nodes.ok() && (*nodes)["nodes"].size() == kNodes) break;
    if (std::chrono::steady_clock::now() > deadline) return Status::TimedOut("the router never saw 3 nodes");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::printf("etcd %s, nodes n0..n%d (lease TTL %d s), forkrouter on %s\n", etcd_url.c_str(), kNodes - 1,
              options.lease_ttl_s, cluster.router_socket.c_str());
  return Status::Ok();
}

Status ForkLatency(const ForkdBenchSite& site, const Options& options, Cluster& cluster) {
  PoolApi router(cluster.router_socket);
  PoolApi direct(cluster.node_sockets[0]);
  FE_RETURN_IF_ERROR(router
                         .Post("/v1/instances",
                               Json{{"name", "template"},
                                    {"hypervisor", "cloud-hypervisor"},
                                    {"import_dir", site.sample_dir()},
                                    {"node", "n0"}},
                               201)
                         .status());
  std::vector<double> through_router, straight;
  for (int i = 0; i < options.forks; ++i) {
    FE_RETURN_IF_ERROR(CheckInterrupted());
    for (bool via_router : {true, false}) {
      PoolApi& api = via_router ? router : direct;
      const std::string name = std::string(via_router ? "r" : "d") + std::to_string(i);
      const auto start = std::chrono::steady_clock::now();
      Result<Json> forked = api.Post("/v1/instances/template/fork", Json{{"name", name}}, 201);
      const double ms = MillisSince(start);
      FE_RETURN_IF_ERROR(forked.status());
      (via_router ? through_router : straight).push_back(ms);
      FE_RETURN_IF_ERROR(direct.Delete("/v1/instances/" + name).status());
    }
  }
  // A read: the forwarding alone (no quorum check, no fork).
  std::vector<double> read_router, read_straight;
  for (int i = 0; i < options.forks; ++i) {
    for (bool via_router : {true, false}) {
      PoolApi& api = via_router ? router : direct;
      const auto start = std::chrono::steady_clock::now();
      FE_RETURN_IF_ERROR(api.Get("/v1/instances/template").status());
      (via_router ? read_router : read_straight).push_back(MillisSince(start));
    }
  }
  const double router_p50 = Percentile(through_router, 0.5), direct_p50 = Percentile(straight, 0.5);
  std::printf("\n1. fork latency (Standby -> Standby, sample instance, %d forks each, interleaved)\n", options.forks);
  std::printf("   %-28s %10s %10s\n", "", "p50 ms", "p99 ms");
  std::printf("   %-28s %10.3f %10.3f\n", "through forkrouter", router_p50, Percentile(through_router, 0.99));
  std::printf("   %-28s %10.3f %10.3f\n", "straight to the node", direct_p50, Percentile(straight, 0.99));
  std::printf("   router overhead at the median: %.3f ms (target <= 1 ms)\n", router_p50 - direct_p50);
  std::printf("   %-28s %10.3f %10.3f\n", "GET instance, forkrouter", Percentile(read_router, 0.5),
              Percentile(read_router, 0.99));
  std::printf("   %-28s %10.3f %10.3f\n", "GET instance, straight", Percentile(read_straight, 0.5),
              Percentile(read_straight, 0.99));
  return Status::Ok();
}

Status PlacementThroughput(const ForkdBenchSite& site, const Options& options, Cluster& cluster) {
  std::mutex mutex;
  std::map<std::string, int> per_node;
  std::string failure;
  std::vector<std::thread> clients;
  const auto start = std::chrono::steady_clock::now();
  for (int c = 0; c < options.clients; ++c) {
    clients.emplace_back([&, c] {
      PoolApi router(cluster.router_socket);
      for (int i = 0; i < options.creates_per_client; ++i) {
        Result<Json> created = router.Post("/v1/instances",
                                           Json{{"name", "p" + std::to_string(c) + "-" + std::to_string(i)},
                                                {"hypervisor", "cloud-hypervisor"},
                                                {"import_dir", site.sample_dir()}},
                                           201);
        std::lock_guard<std::mutex> lock(mutex);
        if (!created.ok()) {
          failure = created.status().ToString();
          return;
        }
        ++per_node[created->value("node", std::string("?"))];
      }
    });
  }
  for (std::thread& client : clients) client.join();
  const double seconds = MillisSince(start) / 1000;
  if (!failure.empty()) return Status::Internal(failure);
  const int total = options.clients * options.creates_per_client;
  std::printf("\n2. placement throughput: %d creates (imports) through forkrouter, %d clients, no node named\n", total,
              options.clients);
  std::printf("   %.1f creates/s;", total / seconds);
  for (const auto& [node, count] : per_node) std::printf(" %s %d", node.c_str(), count);
  std::printf("\n");
  return Status::Ok();
}

Status DeathToNoPlacements(const ForkdBenchSite& site, const Options& options, Cluster& cluster) {
  PoolApi router(cluster.router_socket);
  cluster.nodes[2].Kill();
  const auto killed = std::chrono::steady_clock::now();
  double gone_ms = -1;
  while (MillisSince(killed) < 60'000) {
    Result<Json> nodes = router.Get("/v1/nodes");
    bool listed = !nodes.ok();
    if (nodes.ok()) {
      for (const Json& node : (*nodes)["nodes"]) listed = listed || node.value("name", "") == "n2";
    }
    if (!listed) {
      gone_ms = MillisSince(killed);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (gone_ms < 0) return Status::TimedOut("n2 stayed in the router's index for 60 s after kill -9");
  int on_dead = 0;
  for (int i = 0; i < 20; ++i) {
    Result<Json> created = router.Post("/v1/instances",
                                       Json{{"name", "after-" + std::to_string(i)},
                                            {"hypervisor", "cloud-hypervisor"},
                                            {"import_dir", site.sample_dir()}},
                                       201);
    FE_RETURN_IF_ERROR(created.status());
    on_dead += created->value("node", "") == "n2";
  }
  std::printf("\n4. kill -9 of n2 -> no placements on it: %.0f ms (lease TTL %d s); 20 creates after it, %d on n2\n",
              gone_ms, options.lease_ttl_s, on_dead);
  return Status::Ok();
}

Status Replication(const ForkdBenchSite& site, Cluster& cluster) {
  PoolApi router(cluster.router_socket);
  PoolApi n0(cluster.node_sockets[0]);
  auto import = [&](const std::string& name, bool as_template) -> Result<double> {
    Json body{{"name", name}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", site.sample_dir()}, {"node", "n0"}};
    if (as_template) body["template"] = true;
    const auto start = std::chrono::steady_clock::now();
    FE_RETURN_IF_ERROR(router.Post("/v1/instances", body, 201).status());
    return MillisSince(start);
  };
  FE_ASSIGN_OR_RETURN(double plain_ms, import("plain-import", false));
  FE_ASSIGN_OR_RETURN(double template_ms, import("golden", true));
  FE_ASSIGN_OR_RETURN(Json files, n0.Get("/v1/instances/golden/files"));
  uint64_t data_bytes = 0;
  for (const Json& file : files["files"]["files"]) {
    for (const Json& chunk : file.value("chunks", Json::array())) data_bytes += chunk["length"].get<uint64_t>();
  }
  // The router forks only what its index shows as a template: n0 publishes it within a round (its
  // publisher is nudged by the create; the lease TTL's third is the bound).
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  auto fork_two = [&](const std::string& name, std::string* node) -> Result<double> {
    const auto start = std::chrono::steady_clock::now();
    FE_ASSIGN_OR_RETURN(Json forked, router.Post("/v1/instances/golden/fork", Json{{"name", name}, {"count", 2}}, 201));
    const double ms = MillisSince(start);
    *node = forked["forks"][0]["instance"].value("node", std::string());
    return ms;
  };
  std::string replica_node, spill_node;
  FE_ASSIGN_OR_RETURN(double replicate_ms, fork_two("spread", &replica_node));
  // The replica reaches the index in its node's next round; the next fork must find it there.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  FE_ASSIGN_OR_RETURN(double spill_ms, fork_two("spill", &spill_node));
  const double copy_s = (replicate_ms - spill_ms) / 1e3;
  std::printf("\n3. replication (sample instance: %.0f MiB of data in its files)\n", data_bytes / 1048576.0);
  std::printf(
      "   import on n0: %.0f ms plain, %.0f ms as a template (its file list: one read and SHA-256 of the data)\n",
      plain_ms, template_ms);
  std::printf("   fork of 2, n0 without room: %.0f ms, replicated to %s and forked there (%.0f MB/s of data, copy and import together)\n",
              replicate_ms, replica_node.c_str(), copy_s > 0 ? data_bytes / 1e6 / copy_s : 0.0);
  std::printf("   the same fork again: %.0f ms on %s (the replica: no copy)\n", spill_ms, spill_node.c_str());
  // The router's account of the copy and the import, from its log.
  Result<std::string> log = ReadSmallFile(site.data_root() + "-cluster/router.log", 16 << 20);
  const size_t line = log.ok() ? log->find("replicated template") : std::string::npos;
  if (line != std::string::npos) {
    std::printf("   forkrouter: %s\n", log->substr(line, log->find('\n', line) - line).c_str());
  }
  return Status::Ok();
}

Status Run(const Options& options) {
  FE_ASSIGN_OR_RETURN(std::unique_ptr<ForkdBenchSite> site, ForkdBenchSite::Create("forkbench-cluster"));
  std::printf("forkbench-cluster on %s\n", site->description().c_str());
  Status ran = [&]() -> Status {
    Cluster cluster;
    FE_RETURN_IF_ERROR(StartCluster(*site, options, cluster));
    FE_RETURN_IF_ERROR(ForkLatency(*site, options, cluster));
    FE_RETURN_IF_ERROR(PlacementThroughput(*site, options, cluster));
    FE_RETURN_IF_ERROR(Replication(*site, cluster));
    FE_RETURN_IF_ERROR(DeathToNoPlacements(*site, options, cluster));
    (void)cluster.router.Stop();
    for (ForkdDaemon& node : cluster.nodes) (void)node.Stop();
    cluster.etcd.Kill();
    return Status::Ok();
  }();
  Status closed = site->Close();
  return ran.ok() ? closed : ran;
}

}  // namespace
}  // namespace fe::bench

int main(int argc, char** argv) {
  fe::bench::Options options;
  CLI::App app{"forkbench-cluster: forkrouter's overhead, placement throughput, and death to no placements (root)"};
  app.add_option("--forks", options.forks, "forks through the router and straight to the node, each")
      ->check(CLI::Range(1, 100'000))
      ->capture_default_str();
  app.add_option("--clients", options.clients, "concurrent clients creating through the router")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--creates-per-client", options.creates_per_client, "creates per client")
      ->check(CLI::Range(1, 10'000))
      ->capture_default_str();
  app.add_option("--lease-ttl-s", options.lease_ttl_s, "the nodes' lease TTL")
      ->check(CLI::Range(1, 600))
      ->capture_default_str();
  app.add_option("--quorum-check-ms", options.quorum_check_ms, "forkrouter's --quorum-check-ms")
      ->check(CLI::Range(0, 60'000))
      ->capture_default_str();
  app.add_option("--forkd", options.forkd, "forkd binary")->capture_default_str();
  app.add_option("--forkrouter", options.forkrouter, "forkrouter binary")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  fe::bench::InstallInterruptHandlers();
  fe::Status status = fe::bench::Run(options);
  if (!status.ok()) {
    std::fprintf(stderr, "forkbench-cluster: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
