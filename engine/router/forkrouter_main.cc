// forkrouter: the cluster's front door (engine/router/cluster_router.h). It holds no state: it reads
// the index the forkd nodes publish in etcd and forwards each request to the node it belongs on, so
// any number may run and a restart recovers nothing.
//
// Listens on a Unix socket (mode 0600, like forkd's) and, with --token-file, on TCP with a bearer
// token; talks to the nodes' TCP APIs with the token of --node-token-file. Shutdown as forkd's:
// SIGTERM/SIGINT taken by sigwait(), requests in flight finish within the grace.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstring>

#include "base/log.h"
#include "engine/cluster/cluster_cache.h"
#include "engine/forkd/http_server.h"
#include "engine/forkd/server.h"
#include "engine/forkd/service_manager.h"
#include "engine/forkd/socket_setup.h"
#include "engine/forkd/token_file.h"
#include "engine/router/cluster_router.h"

namespace fe::engine::router {
namespace {

struct Options {
  std::string cluster_etcd;
  std::string cluster = "default";
  std::string socket = "/run/forkengine/forkrouter.sock";
  std::string listen_tcp;
  std::string token_file;
  std::string node_token_file;
  int ready_fd = -1;
  int64_t shutdown_grace_ms = 30000;
  int64_t node_timeout_ms = 60000;
  int64_t quorum_check_ms = 250;
};

int Run(const Options& options) {
  Result<std::vector<cluster::EtcdEndpoint>> endpoints = cluster::ParseEtcdEndpoints(options.cluster_etcd);
  if (!endpoints.ok()) {
    spdlog::critical("--cluster-etcd: {}", endpoints.status().ToString());
    return 2;
  }
  std::string token;
  std::optional<std::pair<std::string, int>> tcp;
  if (!options.listen_tcp.empty()) {
    if (options.token_file.empty()) {
      spdlog::critical("--listen-tcp needs --token-file: the router's TCP clients must authenticate");
      return 2;
    }
    Result<std::string> read = forkd::ReadTokenFile(options.token_file);
    Result<std::pair<std::string, int>> parsed = forkd::ParseHostPort("--listen-tcp", options.listen_tcp);
    if (!read.ok() || !parsed.ok()) {
      spdlog::critical("{}", (!read.ok() ? read.status() : parsed.status()).ToString());
      return 2;
    }
    token = *read;
    tcp = *parsed;
  }
  RouterOptions router_options;
  router_options.node_timeout = std::chrono::milliseconds(options.node_timeout_ms);
  router_options.quorum_check_ttl = std::chrono::milliseconds(options.quorum_check_ms);
  if (!options.node_token_file.empty()) {
    Result<std::string> read = forkd::ReadTokenFile(options.node_token_file);
    if (!read.ok()) {
      spdlog::critical("--node-token-file: {}", read.status().ToString());
      return 2;
    }
    router_options.node_token = *read;
  }

  auto etcd = std::make_shared<cluster::EtcdClient>(std::move(*endpoints), std::chrono::milliseconds(3000));
  const cluster::ClusterKeys keys(options.cluster);
  cluster::ClusterCache cache(etcd, keys);
  cache.Start();
  ClusterRouter router(cache, etcd, keys, router_options);

  forkd::HttpServer server(router.Handlers(), forkd::HttpServerOptions{});
  Result<int> unix_fd = forkd::BindUnixSocket(options.socket);
  forkd::ListenerOptions unix_options;
  unix_options.name = "unix:" + options.socket;
  unix_options.max_body_bytes = forkd::kMaxBodyBytes;
  Status listening = unix_fd.ok() ? server.ServeUnixSocket(*unix_fd, unix_options) : unix_fd.status();
  if (listening.ok() && tcp) {
    forkd::ListenerOptions tcp_options = unix_options;
    tcp_options.name = "tcp:" + options.listen_tcp;
    tcp_options.token = token;
    tcp_options.header_timeout = std::chrono::milliseconds(3000);
    listening = server.ServeTcp(tcp->first, tcp->second, std::move(tcp_options)).status();
  }
  if (!listening.ok()) {
    spdlog::critical("{}", listening.ToString());
    server.Stop(std::chrono::milliseconds(0));
    if (unix_fd.ok()) ::unlink(options.socket.c_str());
    return 1;
  }
  server.Start();
  spdlog::info("forkrouter for cluster {} (etcd {}) listening on unix:{}{}", options.cluster, options.cluster_etcd,
               options.socket, options.listen_tcp.empty() ? "" : " and tcp:" + options.listen_tcp + " (bearer token)");
  if (options.ready_fd >= 0) {
    (void)!::write(options.ready_fd, "ready\n", 6);
    ::close(options.ready_fd);
  }
  (void)forkd::NotifyServiceManager("READY=1\nSTATUS=routing cluster " + options.cluster);

  spdlog::info("signal {}: stopping", forkd::WaitForStopSignal());
  (void)forkd::NotifyServiceManager("STOPPING=1");
  server.Stop(std::chrono::milliseconds(options.shutdown_grace_ms));
  ::unlink(options.socket.c_str());
  cache.Stop();
  spdlog::info("forkrouter stopped");
  return 0;
}

}  // namespace
}  // namespace fe::engine::router

int main(int argc, char** argv) {
  fe::engine::forkd::PrepareDaemonProcess();

  fe::engine::router::Options options;
  CLI::App app{"forkrouter: one /v1 API in front of a cluster of forkd nodes (placement through etcd's index)"};
  app.add_option("--cluster-etcd", options.cluster_etcd, "etcd's client URLs, http://HOST:PORT,...")->required();
  app.add_option("--cluster", options.cluster, "the cluster's name (the etcd key prefix /forkengine/v1/<cluster>/)")
      ->capture_default_str();
  app.add_option("--socket", options.socket, "Unix socket to listen on (mode 0600)")->capture_default_str();
  app.add_option("--listen-tcp", options.listen_tcp, "also listen on HOST:PORT (requires --token-file)");
  app.add_option("--token-file", options.token_file, "file holding the bearer token TCP clients must send");
  app.add_option("--node-token-file", options.node_token_file, "file holding the bearer token of the nodes' TCP APIs");
  app.add_option("--node-timeout-ms", options.node_timeout_ms, "how long a forwarded request may take on its node")
      ->check(CLI::Range(int64_t{100}, int64_t{3'600'000}))
      ->capture_default_str();
  app.add_option("--quorum-check-ms", options.quorum_check_ms,
                 "how long a successful check of etcd's quorum is reused before a change is forwarded (0: every "
                 "change checks)")
      ->check(CLI::Range(int64_t{0}, int64_t{60'000}))
      ->capture_default_str();
  app.add_option("--ready-fd", options.ready_fd, "write \"ready\" to this fd once the socket accepts connections");
  app.add_option("--shutdown-grace-ms", options.shutdown_grace_ms,
                 "on SIGTERM, how long requests in flight may take to finish")
      ->capture_default_str();
  app.set_version_flag("--version", std::string("forkrouter ") + FE_VERSION);
  CLI11_PARSE(app, argc, argv);

  fe::engine::forkd::ConfigureLogFormat();
  return fe::engine::router::Run(options);
}
