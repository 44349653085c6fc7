// forkrouter (engine/router) in front of real forkd nodes, each in a network namespace of its own on
// a test bridge (tests/support/bridge_network.h) with its TCP API on its bridge address and a token,
// and a real etcd listening on the bridge: placement, forwarding, a dead or partitioned node, etcd
// losing members, names unique through two routers. Every reply is validated against openapi.json
// (the ApiReplies fixture), the router's like forkd's.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "base/process.h"
#include "engine/cluster/etcd_client.h"
#include "engine/forkd/server.h"
#include "engine/router/cluster_router.h"
#include "tests/engine/forkd/forkd_test_fixture.h"
#include "tests/support/bridge_network.h"
#include "tests/support/etcd_cluster.h"

namespace fe::engine::router {
namespace {

using namespace std::chrono_literals;
using forkd::test::ApiClient;
using forkd::test::ApiResponse;
using forkd::test::ForkdProcess;
using forkd::test::Json;
using forkd::test::StatusAndCode;

TEST(ForkRouterRoutesTest, TheRouterAnswersEveryRouteForkdServes) {
  std::set<std::pair<std::string, std::string>> forkd_routes, router_routes;
  for (const forkd::ServedRoute& route : forkd::ServedRoutes()) forkd_routes.insert({route.method, route.pattern});
  for (const auto& route : ClusterRouter::Routes()) router_routes.insert(route);
  EXPECT_EQ(router_routes, forkd_routes);
}

TEST(ForkRouterRoutesTest, EveryInstanceAndPoolInAReplyIsMarkedWithItsNode) {
  Json fork = {{"forks", {{{"instance", {{"id", "i-1"}}}}}}};
  MarkNode(fork, "n1");
  EXPECT_EQ(fork["forks"][0]["instance"]["node"], "n1");
  Json list = {{"instances", {{{"id", "a"}}, {{"id", "b"}}}}, {"pools", {{{"name", "p"}}}}};
  MarkNode(list, "n2");
  EXPECT_EQ(list["instances"][1]["node"], "n2");
  EXPECT_EQ(list["pools"][0]["node"], "n2");
  Json instance = {{"id", "i-1"}, {"state", "Standby"}};
  MarkNode(instance, "n3");
  EXPECT_EQ(instance["node"], "n3");
  Json usage = {{"logical_bytes", 1}};
  MarkNode(usage, "n3");
  EXPECT_FALSE(usage.contains("node"));
}

class ForkRouterTest : public forkd::test::ForkdTest {
 protected:
  static constexpr int kApiPort = 7000;

  void StartCluster(int nodes, int etcd_members = 1, int routers = 1) {
    Result<std::unique_ptr<fe::test::BridgeNetwork>> network = fe::test::BridgeNetwork::Create(nodes);
    if (!network.ok() && network.status().code() == ErrorCode::kUnsupported)
      GTEST_SKIP() << network.status().ToString();
    ASSERT_TRUE(network.ok()) << network.status().ToString();
    network_ = std::move(*network);
    Result<std::unique_ptr<fe::test::EtcdCluster>> etcd =
        fe::test::EtcdCluster::Start(temp_->Sub("etcd"), etcd_members, network_->BridgeAddress());
    if (!etcd.ok() && etcd.status().code() == ErrorCode::kUnsupported) GTEST_SKIP() << etcd.status().ToString();
    ASSERT_TRUE(etcd.ok()) << etcd.status().ToString();
    etcd_ = std::move(*etcd);
    token_file_ = temp_->Sub("token");
    FE_ASSERT_OK(fe::test::WriteFile(token_file_, "n0des-t0ken\n", 0600));
    for (int i = 0; i < nodes; ++i) {
      nodes_.push_back(nullptr);
      ASSERT_NO_FATAL_FAILURE(StartNode(i));
    }
    for (int r = 0; r < routers; ++r) {
      routers_.push_back(ForkdProcess::Router(
          temp_->Sub("run/router" + std::to_string(r) + ".sock"), temp_->Sub("router" + std::to_string(r) + ".log"),
          {"--cluster-etcd", etcd_->Endpoints(), "--cluster", "t", "--node-token-file", token_file_}));
      FE_ASSERT_OK(routers_.back()->Start());
      FE_ASSERT_OK(routers_.back()->WaitReady());
    }
    ASSERT_TRUE(RouterSeesNodes(nodes)) << RouterLog();
  }

  void StartNode(int i) {
    const std::string name = "n" + std::to_string(i);
    const std::string api = network_->Address(i) + ":" + std::to_string(kApiPort);
    std::vector<std::string> arguments{"--cluster-etcd", etcd_->Endpoints(), "--cluster", "t", "--node-name", name,
                                       "--cluster-lease-ttl-s", "2", "--listen-tcp", api, "--token-file", token_file_,
                                       "--subnet", "10.9" + std::to_string(i) + ".0.0/16", "--manage-taps", "off",
                                       // Pools refill at once, however busy the machine is (a build beside the tests).
                                       "--pool-tick-ms", "20", "--busy-threshold", "1"};
    if (node_arguments_.count(i) != 0) {
      arguments.insert(arguments.end(), node_arguments_[i].begin(), node_arguments_[i].end());
    }
    nodes_[i] = std::make_unique<ForkdProcess>(scratch_ + "/" + name, temp_->Sub("run/" + name + ".sock"),
                                               temp_->Sub(name + ".log"), std::move(arguments));
    nodes_[i]->SetLauncher(network_->Exec(i));
    FE_ASSERT_OK(nodes_[i]->Start());
    FE_ASSERT_OK(nodes_[i]->WaitReady());
  }

  ApiClient router(int r = 0) const { return routers_.at(r)->client(); }
  ApiClient node(int i) const { return nodes_.at(i)->client(); }
  std::string RouterLog() const { return routers_.empty() ? "" : routers_[0]->Log(); }

  // Whether the router's GET /v1/nodes comes to list exactly `count` nodes.
  bool RouterSeesNodes(size_t count, std::chrono::milliseconds timeout = 10s) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      const ApiResponse nodes = router().Get("/v1/nodes");
      if (nodes.status == 200 && nodes.json["nodes"].size() == count) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  // Whether the router's index comes to show at least `count` templates on node `i` (a node publishes
  // a new template in a round it starts at once, after the reply).
  bool RouterSeesTemplates(int i, int count) const {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (router().Get("/v1/nodes").json["nodes"][i].value("templates", 0) >= count) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  ApiResponse CreateThrough(const ApiClient& client, const std::string& name, const std::string& on = "") const {
    Json body{{"name", name}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", guest_}};
    if (!on.empty()) body["node"] = on;
    return client.Post("/v1/instances", body);
  }

  // Whether the ownership of instance `id` comes to be in etcd (a node publishes a new instance's in a
  // round it starts at once, after the reply).
  bool OwnershipPublished(const std::string& id) const {
    cluster::EtcdClient etcd(*cluster::ParseEtcdEndpoints(etcd_->Endpoints()), 3s);
    for (int attempt = 0; attempt < 100; ++attempt) {
      Result<std::optional<cluster::KeyValue>> owner = etcd.Get("/forkengine/v1/t/instances/" + id);
      if (owner.ok() && owner->has_value()) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  static std::string NodeOf(const ApiResponse& reply) {
    return reply.json.is_object() ? reply.json.value("node", std::string("(none: ") + reply.body + ")") : reply.body;
  }

  void TearDown() override {
    routers_.clear();
    nodes_.clear();
    etcd_.reset();
    network_.reset();
    ForkdTest::TearDown();
  }

  std::unique_ptr<fe::test::BridgeNetwork> network_;
  std::unique_ptr<fe::test::EtcdCluster> etcd_;
  std::string token_file_;
  std::vector<std::unique_ptr<ForkdProcess>> nodes_;
  std::vector<std::unique_ptr<ForkdProcess>> routers_;
  std::map<int, std::vector<std::string>> node_arguments_;  // more forkd arguments of node i
};

TEST_F(ForkRouterTest, AForkThroughTheRouterLandsOnTheOnlyHolderAndEveryInstanceSaysItsNode) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  const ApiResponse web = CreateThrough(router(), "web", "n1");
  ASSERT_EQ(web.status, 201) << web.body;
  EXPECT_EQ(NodeOf(web), "n1");

  const ApiResponse forked = router().Post("/v1/instances/web/fork", Json{{"name", "child"}, {"count", 2}});
  ASSERT_EQ(forked.status, 201) << forked.body << RouterLog();
  for (const Json& fork : forked.json["forks"]) EXPECT_EQ(fork["instance"]["node"], "n1");
  EXPECT_EQ(node(1).Get("/v1/instances").json["instances"].size(), 3u);
  EXPECT_EQ(node(0).Get("/v1/instances").json["instances"].size(), 0u);
  EXPECT_EQ(node(2).Get("/v1/instances").json["instances"].size(), 0u);

  // Reads go to the owner, by id or by name, also before its next publishing round.
  const std::string child_id = forked.json["forks"][0]["instance"]["id"];
  EXPECT_EQ(NodeOf(router().Get("/v1/instances/" + child_id)), "n1");
  EXPECT_EQ(NodeOf(router().Get("/v1/instances/child-2")), "n1");
  const ApiResponse list = router().Get("/v1/instances");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.json["instances"].size(), 3u);
  EXPECT_EQ(list.json["unreachable"].size(), 0u);
  EXPECT_EQ(StatusAndCode(router().Get("/v1/instances/nobody")), "404 not_found");
  // forkctl works unchanged against the router's socket.
  Result<ProcessResult> listed = RunProcess({forkd::test::ForkctlBinary(), "--socket", routers_[0]->socket(), "ls"});
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_EQ(listed->exit_code, 0) << listed->output;
  EXPECT_NE(listed->output.find("child-2"), std::string::npos) << listed->output;
  Result<ProcessResult> nodes = RunProcess({forkd::test::ForkctlBinary(), "--socket", routers_[0]->socket(), "nodes"});
  ASSERT_TRUE(nodes.ok());
  EXPECT_NE(nodes->output.find("n2"), std::string::npos) << nodes->output;
  EXPECT_EQ(router().Delete("/v1/instances/child-1").status, 204);
  EXPECT_EQ(node(1).Get("/v1/instances").json["instances"].size(), 2u);
}

TEST_F(ForkRouterTest, ACreateIsPlacedOnALiveNodeOrTheNodeItNamesAndANodeRefusesAnotherNodesName) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(2));
  std::set<std::string> placed;
  for (int i = 0; i < 6; ++i) {
    const ApiResponse created = CreateThrough(router(), "vm-" + std::to_string(i));
    ASSERT_EQ(created.status, 201) << created.body;
    placed.insert(NodeOf(created));
  }
  EXPECT_TRUE(placed.count("n0") + placed.count("n1") == placed.size()) << "only live nodes take creates";
  EXPECT_EQ(StatusAndCode(CreateThrough(router(), "x", "n7")), "503 unavailable");
  EXPECT_EQ(StatusAndCode(CreateThrough(node(0), "x", "n1")), "400 invalid_argument")
      << "a forkd creates only what is meant for itself";
  EXPECT_EQ(CreateThrough(node(0), "x", "n0").status, 201);
  EXPECT_EQ(StatusAndCode(router().Get("/v1/storage")), "422 unsupported");
}

TEST_F(ForkRouterTest, ADeadNodesInstancesAreUnreachableNotGoneItGetsNoPlacementsAndARestartBringsThemBack) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  const ApiResponse a_created = CreateThrough(router(), "a", "n1");
  ASSERT_EQ(a_created.status, 201);
  ASSERT_TRUE(OwnershipPublished(a_created.json["id"]));
  nodes_[1]->Signal(SIGKILL);
  nodes_[1]->Wait();
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_TRUE(RouterSeesNodes(2)) << "the lease (2 s) must run out";
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  EXPECT_LT(seconds, 6.0) << "a dead node leaves the index within its lease and a renewal round";

  const ApiResponse list = router().Get("/v1/instances");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.json["unreachable"].size(), 1u) << list.body;
  EXPECT_EQ(list.json["unreachable"][0]["name"], "a");
  EXPECT_EQ(list.json["unreachable"][0]["node"], "n1");
  const ApiResponse a = router().Get("/v1/instances/a");
  EXPECT_EQ(StatusAndCode(a), "503 unavailable");
  EXPECT_NE(a.body.find("n1"), std::string::npos) << a.body;
  for (int i = 0; i < 6; ++i) {
    const ApiResponse created = CreateThrough(router(), "b-" + std::to_string(i));
    ASSERT_EQ(created.status, 201) << created.body;
    EXPECT_NE(NodeOf(created), "n1");
  }

  ASSERT_NO_FATAL_FAILURE(StartNode(1));
  ASSERT_TRUE(RouterSeesNodes(3));
  EXPECT_EQ(NodeOf(router().Get("/v1/instances/a")), "n1");
  EXPECT_EQ(router().Get("/v1/instances").json["unreachable"].size(), 0u);
}

TEST_F(ForkRouterTest, APartitionedNodeLeavesTheIndexKeepsServingLocallyAndRejoinsWhenHealed) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  const ApiResponse p_created = CreateThrough(router(), "p", "n2");
  ASSERT_EQ(p_created.status, 201);
  ASSERT_TRUE(OwnershipPublished(p_created.json["id"]));
  FE_ASSERT_OK(network_->Partition(2));
  ASSERT_TRUE(RouterSeesNodes(2)) << "a node that cannot renew its lease leaves the index";
  EXPECT_EQ(StatusAndCode(router().Get("/v1/instances/p")), "503 unavailable");
  EXPECT_EQ(node(2).Get("/v1/instances/p").status, 200) << "the node still serves its local API";
  FE_ASSERT_OK(network_->Heal(2));
  ASSERT_TRUE(RouterSeesNodes(3, 15s)) << nodes_[2]->Log();
  EXPECT_EQ(NodeOf(router().Get("/v1/instances/p")), "n2");
}

TEST_F(ForkRouterTest, FiftyConcurrentCreatesOfOneNameThroughTwoRoutersMakeExactlyOne) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(2, 1, 2));
  std::atomic<int> created{0}, refused{0};
  std::vector<std::string> other;
  std::mutex other_mutex;
  std::vector<std::thread> clients;
  for (int i = 0; i < 50; ++i) {
    clients.emplace_back([&, i] {
      const ApiResponse reply = CreateThrough(router(i % 2), "race");
      if (reply.status == 201) {
        ++created;
      } else if (StatusAndCode(reply) == "409 already_exists") {
        ++refused;
      } else {
        std::lock_guard<std::mutex> lock(other_mutex);
        other.push_back(std::to_string(reply.status) + " " + reply.body + reply.error);
      }
    });
  }
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(refused.load(), 49);
  EXPECT_TRUE(other.empty()) << other.front();
  EXPECT_EQ(
      node(0).Get("/v1/instances").json["instances"].size() + node(1).Get("/v1/instances").json["instances"].size(),
      1u);
}

TEST_F(ForkRouterTest, AnAcquireGoesToTheNodeWhosePoolHasReadyMembers) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(2));
  ASSERT_EQ(CreateThrough(router(), "t0", "n0").status, 201);
  ASSERT_EQ(CreateThrough(router(), "t1", "n1").status, 201);
  ASSERT_EQ(
      router().Post("/v1/pools", Json{{"name", "p"}, {"template", "t0"}, {"min_size", 0}, {"max_size", 1}}).status,
      201);
  const ApiResponse warm =
      router().Post("/v1/pools", Json{{"name", "p"}, {"template", "t1"}, {"min_size", 2}, {"max_size", 2}});
  ASSERT_EQ(warm.status, 201) << warm.body;
  EXPECT_EQ(NodeOf(warm), "n1") << "a pool is made beside its template";
  // n1's ready members reach the index with its next publishing round.
  cluster::EtcdClient etcd(*cluster::ParseEtcdEndpoints(etcd_->Endpoints()), 3s);
  bool published = false;
  for (int attempt = 0; attempt < 200 && !published; ++attempt) {
    Result<std::optional<cluster::KeyValue>> pool = etcd.Get("/forkengine/v1/t/pools/n1/p");
    published = pool.ok() && pool->has_value() && Json::parse((*pool)->value).value("ready", 0) == 2;
    if (!published) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(published) << nodes_[1]->Log();
  std::this_thread::sleep_for(300ms);  // the watch delivers it to the router
  const ApiResponse acquired = router().Post("/v1/pools/p/acquire", Json::object());
  ASSERT_EQ(acquired.status, 200) << acquired.body;
  EXPECT_EQ(acquired.json["instance"]["node"], "n1");
  EXPECT_TRUE(acquired.json["hit"].get<bool>());
  const ApiResponse pools = router().Get("/v1/pools");
  ASSERT_EQ(pools.json["pools"].size(), 2u);
  std::set<std::string> pool_nodes;
  for (const Json& pool : pools.json["pools"]) pool_nodes.insert(pool["node"].get<std::string>());
  EXPECT_EQ(pool_nodes, (std::set<std::string>{"n0", "n1"}));
}

TEST_F(ForkRouterTest, OneOfThreeEtcdMembersDownChangesNothingTwoDownRefusesChangesWhileNodesServeLocally) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(2, 3));
  etcd_->Kill(0);
  EXPECT_EQ(CreateThrough(router(), "one-down", "n0").status, 201);
  EXPECT_EQ(router().Post("/v1/instances/one-down/fork", Json{{"name", "one-down-f"}}).status, 201);
  etcd_->Kill(1);
  std::this_thread::sleep_for(400ms);  // the router reuses a quorum check for 250 ms
  const ApiResponse refused = CreateThrough(router(), "two-down", "n0");
  EXPECT_EQ(StatusAndCode(refused), "503 unavailable");
  EXPECT_NE(refused.body.find("quorum"), std::string::npos) << refused.body;
  EXPECT_EQ(StatusAndCode(router().Delete("/v1/instances/one-down-f")), "503 unavailable");
  EXPECT_EQ(router().Get("/v1/instances/one-down").status, 200) << "reads are served from the last index";
  EXPECT_EQ(CreateThrough(node(0), "local").status, 201) << "a node admits on its own while etcd has no quorum";
  FE_ASSERT_OK(etcd_->Restart(1));
  bool accepted = false;
  for (int attempt = 0; attempt < 100 && !accepted; ++attempt) {
    accepted = CreateThrough(router(), "healed", "n1").status == 201;
    if (!accepted) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(accepted) << "quorum back: changes are accepted again";
}

TEST_F(ForkRouterTest, AForkNoHolderHasRoomForReplicatesTheTemplateSparseAndUnchangedToANodeOfItsCpuModel) {
  node_arguments_[1] = {"--cpu-budget", "1"};           // the template's node: no room for two forks at once
  node_arguments_[2] = {"--cpu-model", "Another CPU"};  // cannot restore the template's snapshot
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  Json body{
      {"name", "tmpl"}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", guest_}, {"template", true}, {"node", "n1"}};
  const ApiResponse tmpl = router().Post("/v1/instances", body);
  ASSERT_EQ(tmpl.status, 201) << tmpl.body;
  const std::string tmpl_id = tmpl.json["id"];
  const std::string source_volume = scratch_ + "/n1/volumes/" + tmpl_id;
  Result<std::map<std::string, fe::test::Digest>> before = forkd::test::TreeDigests(source_volume);
  ASSERT_TRUE(before.ok() && !before->empty()) << source_volume;
  // The template is in the index before the fork asks for it.
  ASSERT_TRUE(RouterSeesTemplates(1, 1));

  const ApiResponse first = router().Post("/v1/instances/tmpl/fork", Json{{"name", "a"}, {"count", 2}});
  ASSERT_EQ(first.status, 201) << first.body << RouterLog();
  const std::string target = first.json["forks"][0]["instance"]["node"];
  EXPECT_EQ(target, "n0") << "the holder has no room for 2 vCPUs, and n2 has another CPU model";
  Json replica;
  const ApiResponse on_target = node(target == "n0" ? 0 : 2).Get("/v1/instances");
  for (const Json& instance : on_target.json["instances"]) {
    if (instance.contains("template")) replica = instance;
  }
  ASSERT_FALSE(replica.is_null()) << "the template was replicated to " << target << ": " << on_target.body;
  EXPECT_EQ(replica["template"]["replica_of"], tmpl_id);
  EXPECT_EQ(replica["template"]["content_hash"], tmpl.json["template"]["content_hash"]);
  EXPECT_EQ(first.json["forks"][0]["instance"]["parent_id"], replica["id"]);
  // Only the data travelled: the 65 MiB disk with 1 MiB of data stays sparse on the target.
  const ApiResponse usage =
      node(target == "n0" ? 0 : 2).Get("/v1/instances/" + replica["id"].get<std::string>() + "/usage");
  ASSERT_EQ(usage.status, 200) << usage.body;
  EXPECT_LT(usage.json["allocated_bytes"].get<uint64_t>(), 8 * fe::test::kMiB) << usage.body;
  EXPECT_GT(usage.json["logical_bytes"].get<uint64_t>(), 64 * fe::test::kMiB) << usage.body;
  Result<std::map<std::string, fe::test::Digest>> after = forkd::test::TreeDigests(source_volume);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, *before) << "a replication only reads its source";

  // The next fork of the same template spills to the replica's node: no second copy is made.
  ASSERT_TRUE(OwnershipPublished(replica["id"]));
  ASSERT_TRUE(RouterSeesTemplates(target == "n0" ? 0 : 2, 1));
  const ApiResponse second = router().Post("/v1/instances/" + tmpl_id + "/fork", Json{{"name", "b"}, {"count", 2}});
  ASSERT_EQ(second.status, 201) << second.body << RouterLog();
  EXPECT_EQ(second.json["forks"][0]["instance"]["node"], target);
  size_t templates = 0;
  for (int i = 0; i < 3; ++i) {
    const ApiResponse listed = node(i).Get("/v1/instances");
    for (const Json& instance : listed.json["instances"]) templates += instance.contains("template");
  }
  EXPECT_EQ(templates, 2u) << "the original and one replica";
  // A fork that fits the holder stays there.
  const ApiResponse third = router().Post("/v1/instances/tmpl/fork", Json{{"name", "c"}});
  ASSERT_EQ(third.status, 201) << third.body;
  EXPECT_EQ(third.json["forks"][0]["instance"]["node"] == "n1" || third.json["forks"][0]["instance"]["node"] == target,
            true);
  EXPECT_EQ(StatusAndCode(router().Get("/v1/uploads/u-0000000000000000")), "422 unsupported");
}

TEST_F(ForkRouterTest, AFanOutNoNodeTakesWholeIsSplitAcrossHoldersNumberedOnAndAFailedPartUndoesTheOthers) {
  for (int i = 0; i < 3; ++i) node_arguments_[i] = {"--cpu-budget", "2"};
  ASSERT_NO_FATAL_FAILURE(StartCluster(3));
  const ApiResponse tmpl = router().Post("/v1/instances", Json{{"name", "tmpl"},
                                                               {"hypervisor", "cloud-hypervisor"},
                                                               {"import_dir", guest_},
                                                               {"template", true},
                                                               {"node", "n1"}});
  ASSERT_EQ(tmpl.status, 201) << tmpl.body;
  ASSERT_TRUE(OwnershipPublished(tmpl.json["id"]));
  ASSERT_TRUE(RouterSeesTemplates(1, 1));

  // Three forks of one vCPU, two vCPUs per node: two on the holder, one on a replica elsewhere.
  const ApiResponse split = router().Post("/v1/instances/tmpl/fork", Json{{"name", "c"}, {"count", 3}});
  ASSERT_EQ(split.status, 201) << split.body << RouterLog();
  ASSERT_EQ(split.json["forks"].size(), 3u);
  std::map<std::string, std::string> node_of;
  for (const Json& fork : split.json["forks"]) node_of[fork["instance"]["name"]] = fork["instance"]["node"];
  EXPECT_EQ(node_of, (std::map<std::string, std::string>{{"c-1", "n1"}, {"c-2", "n1"}, {"c-3", node_of["c-3"]}}));
  EXPECT_NE(node_of["c-3"], "n1");

  // A part refused (its name is taken on the cluster) takes back what the other parts made.
  ASSERT_EQ(CreateThrough(router(), "d-4", "n0").status, 201);
  ASSERT_TRUE(RouterSeesTemplates(node_of["c-3"] == "n0" ? 0 : 2, 1));
  EXPECT_EQ(StatusAndCode(router().Post("/v1/instances/tmpl/fork", Json{{"name", "d"}, {"count", 4}})),
            "409 already_exists")
      << RouterLog();
  for (const char* name : {"d-1", "d-2", "d-3"}) {
    EXPECT_EQ(StatusAndCode(router().Get(std::string("/v1/instances/") + name)), "404 not_found") << name;
  }
  EXPECT_EQ(router().Get("/v1/instances/d-4").status, 200) << "the instance that was there stays";
}

}  // namespace
}  // namespace fe::engine::router
