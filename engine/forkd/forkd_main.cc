// forkd: the forkengine daemon. Opens the engine on a data root and serves the /v1 HTTP/JSON API
// (engine/forkd/server.h) on a Unix socket and, with a bearer token, on TCP.
//
// Shutdown: SIGTERM and SIGINT are blocked in every thread and taken by sigwait() on the main thread
// (no work in a signal handler). The HTTP server (engine/forkd/http_server.h) stops accepting,
// closes idle connections at once and lets the requests in flight finish within
// --shutdown-grace-ms, so a fork either completes or is rolled back inside the engine. Then the pool
// manager (its refills finish first) and the engine are destroyed, in that order, and forkd exits 0.
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/fs_util.h"
#include "base/log.h"
#include "engine/data_root.h"
#include "engine/cluster/node_publisher.h"
#include "engine/engine.h"
#include "storage/dm_thin/dm_thin_config.h"
#include "storage/loop/loop_pool.h"
#include "engine/lifecycle_keeper.h"
#include "engine/forkd/metrics.h"
#include "engine/forkd/metrics_listener.h"
#include "engine/forkd/server.h"
#include "engine/forkd/service_manager.h"
#include "engine/forkd/socket_setup.h"
#include "engine/forkd/token_file.h"
#include "hypervisor/registry/registry.h"
#include "engine/pools/pool.h"
#include "storage/registry/backend_selection.h"
#include "storage/registry/clone_calibration.h"

namespace fe::engine::forkd {
namespace {

struct Options {
  std::string data_root = "/var/lib/forkengine";
  std::string socket = "/run/forkengine/forkd.sock";
  std::string listen_tcp;
  std::string metrics_listen;
  // The cluster (engine/cluster/): etcd's client URLs; empty: no cluster.
  std::string cluster_etcd;
  std::string cluster = "default";
  std::string node_name;
  std::string advertise_api;
  std::string cpu_model;
  int64_t cluster_lease_ttl_s = 10;
  std::string token_file;
  std::string backend = "auto";
  std::string subnet = "10.100.0.0/16";
  int64_t lock_timeout_ms = 30'000;
  std::string bridge;
  std::string manage_taps = "auto";
  int64_t identity_timeout_ms = 10'000;
  // Idle standby (engine/lifecycle_keeper.h): the most of one CPU an idle VMM uses, in percent.
  double idle_cpu_percent = engine::LifecycleKeeperOptions().busy_fraction * 100;
  // dm-thin (storage/dm_thin): an existing pool's devices, or the loop-backed default's sizes.
  std::string thin_pool;
  std::string thin_data_device;
  std::string thin_metadata_device;
  std::string thin_pool_size = "64G";
  std::string thin_volume_size = "20G";
  std::string loop_pool = "auto";
  std::string loop_pool_size = "8G";
  int ready_fd = -1;
  int64_t shutdown_grace_ms = 10'000;
  int64_t idempotency_window_s = 86'400;
  size_t events_kept = engine::EngineConfig().events_kept;
  size_t max_connections = 1024;
  // Pools (engine/pools/pool.h): defaults are PoolConfig's.
  int cpu_budget_vcpus = 0;
  uint64_t memory_budget_mib = 0;
  double overcommit = engine::pools::PoolConfig().overcommit;
  double busy_threshold = engine::pools::PoolConfig().busy_threshold;
  int64_t pool_tick_ms = engine::pools::PoolConfig().tick.count();
  int max_parallel_refills = engine::pools::PoolConfig().max_parallel_refills;
  int64_t acquire_quiet_ms = engine::pools::PoolConfig().acquire_quiet.count();
  int64_t max_growth_deferral_ms = engine::pools::PoolConfig().max_growth_deferral.count();
};

engine::pools::PoolConfig MakePoolConfig(const Options& options) {
  engine::pools::PoolConfig config;
  config.cpu_budget_vcpus = options.cpu_budget_vcpus;
  config.memory_budget_bytes = options.memory_budget_mib << 20;
  config.overcommit = options.overcommit;
  config.busy_threshold = options.busy_threshold;
  config.tick = std::chrono::milliseconds(options.pool_tick_ms);
  config.max_parallel_refills = options.max_parallel_refills;
  config.acquire_quiet = std::chrono::milliseconds(options.acquire_quiet_ms);
  config.max_growth_deferral = std::chrono::milliseconds(options.max_growth_deferral_ms);
  return config;
}

// The thin pool of the --thin-* options, validated. `configured`: a pool or its devices were named,
// so dm-thin serves (else the sizes are those of the loop-backed default, if dm-thin serves at all).
Result<storage::dm_thin::DmThinConfig> ThinPoolFromOptions(const Options& options, bool* configured) {
  *configured =
      !options.thin_pool.empty() || !options.thin_data_device.empty() || !options.thin_metadata_device.empty();
  storage::dm_thin::DmThinConfig thin;
  if (!options.thin_pool.empty()) thin.pool_name = options.thin_pool;
  thin.data_device = options.thin_data_device;
  thin.metadata_device = options.thin_metadata_device;
  Result<uint64_t> pool_size = storage::loop::ParseSize(options.thin_pool_size);
  if (!pool_size.ok()) return pool_size.status().Annotate("--thin-pool-size");
  Result<uint64_t> volume_size = storage::loop::ParseSize(options.thin_volume_size);
  if (!volume_size.ok()) return volume_size.status().Annotate("--thin-volume-size");
  thin.data_size_bytes = *pool_size;
  thin.volume_size_bytes = *volume_size;
  thin.data_root = options.data_root;  // for the check; the registry sets the volumes root
  FE_RETURN_IF_ERROR(storage::dm_thin::ValidateDmThinConfig(thin));
  return thin;
}

// Times clones with each mechanism the volumes root offers (storage/registry/clone_calibration.h);
// without a calibration auto keeps its fixed crossover, so a failure is a warning.
std::optional<storage::registry::CloneCalibration> CalibrateVolumesRoot(const std::string& root) {
  Result<storage::registry::CloneCalibration> calibration = storage::registry::CalibrateCloneCosts(root);
  if (!calibration.ok()) {
    spdlog::warn("clone calibration of {} failed, auto uses its fixed crossover: {}", root,
                 calibration.status().ToString());
    return std::nullopt;
  }
  std::string costs;
  for (const storage::registry::MeasuredClone& clone : calibration->clones) {
    costs += fmt::format(" {} {} entries {} us;", clone.mechanism, clone.entries, clone.clone_us);
  }
  spdlog::info("clone calibration of {} in {} us:{}", root, calibration->took_us, costs);
  return std::move(*calibration);
}

// This node in the cluster: who it is, from the options and the host.
cluster::PublisherOptions ClusterNode(const Options& options) {
  cluster::PublisherOptions publisher;
  publisher.cluster = options.cluster;
  publisher.node.name = options.node_name;
  if (publisher.node.name.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    publisher.node.name = host;
  }
  publisher.node.api = options.advertise_api.empty() ? options.listen_tcp : options.advertise_api;
  publisher.node.version = FE_VERSION;
  publisher.node.hypervisors = hypervisor::registry::SupportedKinds();
  publisher.node.cpu_model = options.cpu_model.empty() ? cluster::HostCpuModel() : options.cpu_model;
  publisher.lease_ttl = std::chrono::seconds(options.cluster_lease_ttl_s);
  return publisher;
}

// The node's state for the publisher (engine/cluster/node_publisher.h), read from the engine and
// pools at each round.
cluster::NodeState ReadNodeState(engine::Engine& engine, engine::pools::PoolManager& pools) {
  cluster::NodeState state;
  state.instances = engine.List();
  if (Result<engine::StorageInfo> storage = engine.Storage(); storage.ok()) {
    state.storage_backend = storage->backend;
    state.storage_free_bytes = storage->filesystem_free_bytes;
  }
  state.pools = pools.List();
  state.cpu_budget_vcpus = pools.cpu_budget_vcpus();
  state.cpu_used_vcpus = pools.cpu_used_vcpus();
  return state;
}

int Run(const Options& options) {
  // Under forkd.socket, systemd holds the socket (its path, mode and group are the unit's), so it
  // stays bound across restarts and is never forkd's to remove. Taken first: marked close-on-exec
  // and its LISTEN_* variables cleared before any VM is started.
  Result<std::optional<ActivatedSocket>> activated = TakeActivatedSocket();
  if (!activated.ok()) {
    spdlog::critical("{}", activated.status().ToString());
    return 1;
  }
  Result<std::string> backend = storage::registry::ParseBackendChoice(options.backend);
  Result<storage::loop::LoopPoolMode> loop_mode = storage::loop::ParseLoopPoolMode(options.loop_pool);
  Result<uint64_t> loop_size = storage::loop::ParseSize(options.loop_pool_size);
  bool thin_configured = false;
  Result<storage::dm_thin::DmThinConfig> thin = ThinPoolFromOptions(options, &thin_configured);
  for (const Status* status : {&backend.status(), &loop_mode.status(), &loop_size.status(), &thin.status()}) {
    if (!status->ok()) {
      spdlog::critical("{}", status->ToString());
      return 2;
    }
  }
  std::string token;
  std::pair<std::string, int> tcp;
  if (!options.listen_tcp.empty()) {
    if (options.token_file.empty()) {
      spdlog::critical("--listen-tcp requires --token-file: the TCP listener never serves without a bearer token");
      return 2;
    }
    Result<std::string> read = ReadTokenFile(options.token_file);
    Result<std::pair<std::string, int>> parsed = ParseHostPort("--listen-tcp", options.listen_tcp);
    if (!read.ok() || !parsed.ok()) {
      spdlog::critical("{}", (!read.ok() ? read.status() : parsed.status()).ToString());
      return 2;
    }
    token = *read;
    tcp = *parsed;
  }

  std::optional<std::pair<std::string, int>> metrics_address;
  if (!options.metrics_listen.empty()) {
    Result<std::pair<std::string, int>> parsed =
        ParseHostPort("--metrics-listen", options.metrics_listen, /*allow_any_port=*/true);
    if (!parsed.ok()) {
      spdlog::critical("{}", parsed.status().ToString());
      return 2;
    }
    metrics_address = *parsed;
  }

  std::optional<std::vector<cluster::EtcdEndpoint>> etcd_endpoints;
  if (!options.cluster_etcd.empty()) {
    Result<std::vector<cluster::EtcdEndpoint>> parsed = cluster::ParseEtcdEndpoints(options.cluster_etcd);
    if (!parsed.ok()) {
      spdlog::critical("--cluster-etcd: {}", parsed.status().ToString());
      return 2;
    }
    etcd_endpoints = std::move(*parsed);
  }

  const engine::DataRoot layout(options.data_root);
  if (Status made = MakeDirectories(options.data_root, 0700); !made.ok()) {
    spdlog::critical("data root: {}", made.ToString());
    return 1;
  }
  // dm-thin, where it serves, replaces the loop-mounted XFS pool: both answer "the root cannot reflink".
  const bool thin_serves =
      *backend == "dm-thin" || thin_configured ||
      (*backend == storage::registry::kAutoBackend && storage::registry::AutoPicksDmThin(layout.Volumes()));
  Result<std::string> pool =
      thin_serves ? Result<std::string>("volumes are dm-thin volumes: no loop-mounted XFS pool")
                  : storage::loop::PrepareLoopPool(layout.Volumes(), layout.LoopPoolImage(), *loop_mode, *loop_size);
  if (!pool.ok()) {
    spdlog::critical("{}", pool.status().ToString());
    return 1;
  }
  spdlog::info("{}", *pool);

  engine::EngineConfig config;
  config.storage.calibration = CalibrateVolumesRoot(layout.Volumes());
  config.data_root = options.data_root;
  config.storage.backend = *backend;
  if (thin_configured) config.storage.thin_pool = *thin;
  config.storage.default_thin_pool = *thin;
  config.network.subnet = options.subnet;
  config.lock_timeout = std::chrono::milliseconds(options.lock_timeout_ms);
  config.events_kept = options.events_kept;
  config.bridge = options.bridge;
  if (options.manage_taps != "auto") config.manage_taps = options.manage_taps == "on";
  config.identity_timeout = std::chrono::milliseconds(options.identity_timeout_ms);
  Result<std::unique_ptr<engine::Engine>> opened = engine::Engine::Open(std::move(config));
  if (!opened.ok()) {
    spdlog::critical("opening the engine on {}: {}", options.data_root, opened.status().ToString());
    return 1;
  }
  std::unique_ptr<engine::Engine> engine = std::move(*opened);
  // The engine logs each recovery action as it takes it; this is the summary an operator looks for.
  spdlog::info("recovery report: {} action(s), {} instance(s)", engine->recovery().actions.size(), engine->Count());

  Metrics metrics;
  engine::pools::PoolConfig pool_config = MakePoolConfig(options);
  pool_config.on_refill = [&metrics](const std::string&, double seconds) { metrics.RecordPoolRefill(seconds); };
  Result<std::unique_ptr<engine::pools::PoolManager>> opened_pools =
      engine::pools::PoolManager::Open(*engine, options.data_root, std::move(pool_config));
  if (!opened_pools.ok()) {
    spdlog::critical("opening the pools on {}: {}", options.data_root, opened_pools.status().ToString());
    return 1;
  }
  std::unique_ptr<engine::pools::PoolManager> pools = std::move(*opened_pools);
  // TTLs and idle standby (issue #23), every second.
  engine::LifecycleKeeperOptions lifecycle_options;
  lifecycle_options.busy_fraction = options.idle_cpu_percent / 100;
  engine::LifecycleKeeper lifecycle(*engine, SystemClock(), {}, lifecycle_options);
  lifecycle.Start();
  spdlog::info("pools: {} pool(s), CPU budget {} vCPUs ({} in use), memory budget {} MiB", pools->List().size(),
               pools->cpu_budget_vcpus(), pools->cpu_used_vcpus(), pools->memory_budget_bytes() >> 20);

  // Attempts a crash cut are undone before anyone can retry them (engine/forkd/idempotency_store.h).
  Result<std::unique_ptr<IdempotencyStore>> requests = IdempotencyStore::Open(
      engine::DataRoot(options.data_root).Requests(), std::chrono::seconds(options.idempotency_window_s));
  Result<size_t> undone = requests.ok() ? UndoCutAttempts(**requests, *engine) : requests.status();
  Result<size_t> swept = undone.ok() ? (*requests)->Sweep() : undone.status();
  if (!swept.ok()) {
    spdlog::critical("idempotency records in {}: {}", engine::DataRoot(options.data_root).Requests(),
                     swept.status().ToString());
    return 1;
  }
  spdlog::info("idempotency records: {} attempt(s) cut by a crash undone, {} expired record(s) removed", *undone,
               *swept);

  // Templates arriving from other nodes (engine/replication): half-sent ones are kept for their sender
  // to resume, stale ones removed.
  Result<std::unique_ptr<engine::replication::UploadStore>> uploads =
      engine::replication::UploadStore::Open(engine::DataRoot(options.data_root).Uploads(), SystemClock());
  if (!uploads.ok()) {
    spdlog::critical("uploads in {}: {}", engine::DataRoot(options.data_root).Uploads(), uploads.status().ToString());
    return 1;
  }

  ApiServer api(*engine, metrics, pools.get(), requests->get());
  api.SetUploads(uploads->get());
  std::shared_ptr<cluster::EtcdClient> etcd;
  std::shared_ptr<cluster::NameReservations> names;
  std::unique_ptr<cluster::ClusterView> view;
  std::optional<cluster::PublisherOptions> node;
  if (etcd_endpoints) {
    node = ClusterNode(options);
    Result<std::string> node_id = cluster::LoadOrCreateNodeId(engine::DataRoot(options.data_root).ClusterNodeId());
    if (!node_id.ok()) {
      spdlog::critical("cluster: {}", node_id.status().ToString());
      return 1;
    }
    node->node.node_id = *node_id;
    spdlog::info("cluster: node {} in cluster {} through etcd {}", node->node.name, node->cluster,
                 options.cluster_etcd);
    etcd = std::make_shared<cluster::EtcdClient>(std::move(*etcd_endpoints), std::chrono::milliseconds(3000));
    names = std::make_shared<cluster::NameReservations>(etcd, cluster::ClusterKeys(node->cluster), node->node.name);
    view = std::make_unique<cluster::ClusterView>(etcd, cluster::ClusterKeys(node->cluster));
    api.SetCluster(names.get(), view.get());
  }
  HttpServer server(api.Handlers(), HttpServerOptions{});
  const bool socket_is_ours = !activated->has_value();
  if (!socket_is_ours && (*activated)->path != options.socket) {
    spdlog::info("serving the socket systemd passed, {} (not --socket {})", (*activated)->path, options.socket);
  }
  const std::string socket_path = socket_is_ours ? options.socket : (*activated)->path;
  Result<int> unix_fd = socket_is_ours ? BindUnixSocket(socket_path) : Result<int>((*activated)->fd);
  ListenerOptions unix_options;
  unix_options.name = "unix:" + socket_path;
  unix_options.max_connections = options.max_connections;
  unix_options.max_body_bytes = kMaxBodyBytes;
  Status listening = unix_fd.ok() ? server.ServeUnixSocket(*unix_fd, unix_options) : unix_fd.status();
  if (listening.ok() && !options.listen_tcp.empty()) {
    ListenerOptions tcp_options = unix_options;
    tcp_options.name = "tcp:" + options.listen_tcp;
    tcp_options.token = token;
    // Clients that never authenticate get a short header deadline: they cannot hold connections long.
    tcp_options.header_timeout = std::chrono::milliseconds(3000);
    listening = server.ServeTcp(tcp.first, tcp.second, std::move(tcp_options)).status();
  }
  if (!listening.ok()) {
    spdlog::critical("{}", listening.ToString());
    server.Stop(std::chrono::milliseconds(0));
    // Only a socket this forkd bound is its to remove (never another daemon's, never systemd's).
    if (unix_fd.ok() && socket_is_ours) ::unlink(socket_path.c_str());
    return 1;
  }
  server.Start();
  spdlog::info("forkd listening on unix:{}{}", socket_path,
               options.listen_tcp.empty() ? "" : " and tcp:" + options.listen_tcp + " (bearer token)");
  std::unique_ptr<MetricsListener> metrics_listener;
  if (metrics_address) {
    Result<std::unique_ptr<MetricsListener>> started = MetricsListener::Start(
        metrics_address->first, metrics_address->second,
        [&engine, &pools, &metrics] { return metrics.Render(ReadScrapeState(*engine, pools.get())); });
    if (!started.ok()) {
      spdlog::critical("--metrics-listen {}: {}", options.metrics_listen, started.status().ToString());
      server.Stop(std::chrono::milliseconds(0));
      if (socket_is_ours) ::unlink(socket_path.c_str());
      return 1;
    }
    metrics_listener = std::move(*started);
    spdlog::info("metrics listening on tcp:{}:{}/metrics (no token, metrics only)", metrics_address->first,
                 metrics_listener->port());
  }
  // Published once serving, so a router never forwards to a node that cannot answer yet.
  std::unique_ptr<cluster::NodePublisher> publisher;
  if (node) {
    publisher = std::make_unique<cluster::NodePublisher>(
        etcd, std::move(*node), [&engine, &pools] { return ReadNodeState(*engine, *pools); }, names);
    names->SetOnMade([publisher = publisher.get()] { publisher->Nudge(); });
  }
  if (options.ready_fd >= 0) {
    (void)!::write(options.ready_fd, "ready\n", 6);
    ::close(options.ready_fd);
  }
  if (Status notified = NotifyServiceManager("READY=1\nSTATUS=serving on unix:" + socket_path); !notified.ok()) {
    spdlog::warn("{}", notified.ToString());
  }

  const std::string received = WaitForStopSignal();
  spdlog::info("signal {}: stopping listeners, letting requests in flight finish (at most {} ms)", received,
               options.shutdown_grace_ms);
  (void)NotifyServiceManager("STOPPING=1");
  if (names) names->SetOnMade(nullptr);
  publisher.reset();  // the node leaves the cluster first: no placements while it stops
  api.Stop();
  if (metrics_listener) metrics_listener->Stop();
  server.Stop(std::chrono::milliseconds(options.shutdown_grace_ms));
  if (socket_is_ours) ::unlink(socket_path.c_str());
  pools.reset();
  engine.reset();
  spdlog::info("forkd stopped");
  return 0;
}

}  // namespace
}  // namespace fe::engine::forkd

int main(int argc, char** argv) {
  // Before any thread exists, so every thread inherits the signal mask.
  fe::engine::forkd::PrepareDaemonProcess();

  fe::engine::forkd::Options options;
  CLI::App app{"forkd: the forkengine daemon (HTTP/JSON API on a Unix socket)"};
  app.add_option("--data-root", options.data_root, "instances, volumes and state")->capture_default_str();
  app.add_option("--socket", options.socket, "Unix socket to listen on (mode 0600)")->capture_default_str();
  app.add_option("--listen-tcp", options.listen_tcp, "also listen on HOST:PORT (requires --token-file)");
  app.add_option("--metrics-listen", options.metrics_listen,
                 "also serve GET /metrics on HOST:PORT for Prometheus (no token; metrics only)");
  app.add_option("--cluster-etcd", options.cluster_etcd,
                 "publish this node in etcd (its client URLs, http://HOST:PORT,...): node, templates, pools, "
                 "instance ownership; without it forkd is a node of its own");
  app.add_option("--cluster", options.cluster, "the cluster's name (the etcd key prefix /forkengine/v1/<cluster>/)")
      ->capture_default_str();
  app.add_option("--node-name", options.node_name, "this node's name in the cluster (default: the host name)");
  app.add_option("--advertise-api", options.advertise_api,
                 "HOST:PORT others reach this node's TCP API at (default: --listen-tcp)");
  app.add_option("--cpu-model", options.cpu_model,
                 "the CPU model this node publishes (default: /proc/cpuinfo's model name); a Standby template is "
                 "replicated and forked only among nodes that publish its node's model, so give nodes whose CPUs "
                 "restore each other's snapshots one name");
  app.add_option("--cluster-lease-ttl-s", options.cluster_lease_ttl_s,
                 "seconds after which a node that stopped renewing its lease is dead to the cluster")
      ->check(CLI::Range(int64_t{1}, int64_t{600}))
      ->capture_default_str();
  app.add_option("--token-file", options.token_file, "file holding the bearer token TCP clients must send");
  app.add_option("--backend", options.backend, "storage backend: auto|dm-thin|btrfs|reflink|copy")
      ->capture_default_str();
  app.add_option("--subnet", options.subnet, "subnet the instances' addresses are leased from")->capture_default_str();
  app.add_option("--lock-timeout-ms", options.lock_timeout_ms, "how long an operation waits for an instance's lock")
      ->capture_default_str();
  app.add_option("--bridge", options.bridge, "attach every instance's TAP device to this bridge (empty: none)");
  app.add_option("--manage-taps", options.manage_taps,
                 "create and delete the instances' TAP devices: on|off|auto (auto: when running as root)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  app.add_option("--identity-timeout-ms", options.identity_timeout_ms,
                 "how long a restored fork's guest agent has to acknowledge its new identity")
      ->capture_default_str();
  app.add_option("--idle-cpu-percent", options.idle_cpu_percent,
                 "idle standby: a VMM that used at most this much of one CPU (over 5 s windows) was idle")
      ->check(CLI::Range(0.01, 100.0))
      ->capture_default_str();
  app.add_option("--thin-pool", options.thin_pool,
                 "dm-thin: device-mapper name of the thin pool (default forkengine); given, dm-thin serves");
  app.add_option("--thin-data-device", options.thin_data_device,
                 "dm-thin: an existing pool's data device (with --thin-metadata-device); default: loop devices "
                 "over sparse images in <data-root>/volumes/.dm-thin");
  app.add_option("--thin-metadata-device", options.thin_metadata_device,
                 "dm-thin: an existing pool's metadata device (4 KiB of zeroes at its start: a new pool)");
  app.add_option("--thin-pool-size", options.thin_pool_size, "dm-thin: data size of a new loop-backed pool")
      ->capture_default_str();
  app.add_option("--thin-volume-size", options.thin_volume_size,
                 "dm-thin: virtual size of each new volume (its filesystem)")
      ->capture_default_str();
  app.add_option("--loop-pool", options.loop_pool,
                 "auto: keep volumes on a loop-mounted XFS image when the data root cannot reflink; none")
      ->capture_default_str();
  app.add_option("--loop-pool-size", options.loop_pool_size, "size of a new pool image (sparse)")
      ->capture_default_str();
  app.add_option("--cpu-budget", options.cpu_budget_vcpus,
                 "vCPUs pool members and running instances may use together (0: host cores x --overcommit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--memory-budget-mib", options.memory_budget_mib,
                 "private memory Running pool members and running instances may hold together, in MiB (0: 80% of "
                 "the host's memory)")
      ->capture_default_str();
  app.add_option("--overcommit", options.overcommit, "vCPUs per host core when --cpu-budget is 0")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--busy-threshold", options.busy_threshold,
                 "no pool refill while the host's busy CPU fraction (0..1, /proc/stat) is above this")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--pool-tick-ms", options.pool_tick_ms, "how often the pool refill loop looks")
      ->check(CLI::Range(int64_t{1}, int64_t{3'600'000}))
      ->capture_default_str();
  app.add_option("--max-parallel-refills", options.max_parallel_refills, "refill forks in flight across all pools")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--acquire-quiet-ms", options.acquire_quiet_ms,
                 "pools grow above their minimum only after no acquire came for this long (0: never wait)")
      ->check(CLI::Range(int64_t{0}, int64_t{60'000}))
      ->capture_default_str();
  app.add_option("--max-growth-deferral-ms", options.max_growth_deferral_ms,
                 "longest a pool's growth above its minimum waits for acquires to pause")
      ->check(CLI::Range(int64_t{0}, int64_t{600'000}))
      ->capture_default_str();
  app.add_option("--ready-fd", options.ready_fd, "write \"ready\" to this fd once the socket accepts connections");
  app.add_option("--shutdown-grace-ms", options.shutdown_grace_ms,
                 "on SIGTERM, how long requests in flight may take to finish")
      ->capture_default_str();
  app.add_option("--events-kept", options.events_kept,
                 "events kept in memory for GET /v1/events?since= (an older cursor is told events were lost)")
      ->check(CLI::Range(size_t{1}, size_t{10'000'000}));
  app.add_option("--idempotency-window-s", options.idempotency_window_s,
                 "how long a finished request's reply is kept for retries with its Idempotency-Key")
      ->check(CLI::Range(int64_t{1}, int64_t{30} * 86'400))
      ->capture_default_str();
  app.add_option("--max-connections", options.max_connections,
                 "open connections per listener; beyond it the one idle longest is closed")
      ->capture_default_str();
  app.set_version_flag("--version", std::string("forkd ") + FE_VERSION);
  CLI11_PARSE(app, argc, argv);

  fe::engine::forkd::ConfigureLogFormat();
  return fe::engine::forkd::Run(options);
}
