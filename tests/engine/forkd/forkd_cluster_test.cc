// forkd as a cluster node (engine/cluster/node_publisher.h) against a real etcd on loopback: what it
// publishes, what vanishes with its lease after kill -9, what a clean stop removes at once, what a
// restart reconciles, and that forkd serves locally while etcd is down.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "base/process.h"
#include "engine/cluster/etcd_client.h"
#include "tests/engine/forkd/forkd_test_fixture.h"
#include "tests/support/etcd_cluster.h"

namespace fe::engine::forkd::test {
namespace {

using namespace std::chrono_literals;
using cluster::KeyValue;

constexpr char kPrefix[] = "/forkengine/v1/t/";

class ForkdClusterTest : public ForkdTest {
 protected:
  void SetUp() override {
    ForkdTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    Result<std::unique_ptr<fe::test::EtcdCluster>> etcd = fe::test::EtcdCluster::Start(temp_->Sub("etcd"), 1);
    if (!etcd.ok() && etcd.status().code() == ErrorCode::kUnsupported) GTEST_SKIP() << etcd.status().ToString();
    ASSERT_TRUE(etcd.ok()) << etcd.status().ToString();
    etcd_ = std::move(*etcd);
    client_.emplace(*cluster::ParseEtcdEndpoints(etcd_->Endpoints()), 5s);
  }

  std::vector<std::string> NodeArgs(const std::string& name) {
    return {"--cluster-etcd",
            etcd_->Endpoints(),
            "--cluster",
            "t",
            "--node-name",
            name,
            "--cluster-lease-ttl-s",
            "2",
            "--listen-tcp",
            "127.0.0.1:" + std::to_string(fe::test::FreeTcpPort()),
            "--token-file",
            TokenFile()};
  }
  void StartNode() { StartForkd(NodeArgs("n1")); }
  // A second node (n2 unless named otherwise), with a data root and socket of its own.
  void StartSecondNode(const std::string& name = "n2") {
    second_ = std::make_unique<ForkdProcess>(scratch_ + "/data2", temp_->Sub("run/forkd2.sock"),
                                             temp_->Sub("forkd2.log"), NodeArgs(name));
    FE_ASSERT_OK(second_->Start());
    FE_ASSERT_OK(second_->WaitReady());
  }
  ApiResponse ImportOn(const ApiClient& node, const std::string& name) {
    return node.Post("/v1/instances", Json{{"name", name}, {"hypervisor", "cloud-hypervisor"}, {"import_dir", guest_}});
  }
  std::string TokenFile() {
    const std::string path = temp_->Sub("token");
    EXPECT_TRUE(fe::test::WriteFile(path, "t0ken\n", 0600).ok());
    return path;
  }

  std::optional<KeyValue> Get(const std::string& key) {
    Result<std::optional<KeyValue>> got = client_->Get(kPrefix + key);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? *got : std::nullopt;
  }
  // Whether `key` comes to exist (present) or to be gone (!present) within `timeout`.
  bool Eventually(const std::string& key, bool present, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (Get(key).has_value() == present) return true;
      std::this_thread::sleep_for(100ms);
    }
    return Get(key).has_value() == present;
  }

  void TearDown() override {
    second_.reset();
    ForkdTest::TearDown();
  }

  std::unique_ptr<fe::test::EtcdCluster> etcd_;
  std::optional<cluster::EtcdClient> client_;
  std::unique_ptr<ForkdProcess> second_;
};

TEST_F(ForkdClusterTest, ANodePublishesItselfItsTemplatesAndOwnershipAndVanishesWithItsLeaseAfterKillMinus9) {
  StartNode();
  const Json web = Import("web");
  const std::string web_id = web.value("id", "");
  ApiResponse forked = api().Post("/v1/instances/web/fork", Json{{"name", "f"}});
  ASSERT_EQ(forked.status, 201) << forked.body;
  const std::string fork_id = forked.json["forks"][0]["instance"]["id"];

  ASSERT_TRUE(Eventually("templates/n1/" + web_id, true)) << log();
  ASSERT_TRUE(Eventually("instances/" + fork_id, true)) << log();
  const Json node = Json::parse(Get("nodes/n1")->value);
  EXPECT_EQ(node["name"], "n1");
  EXPECT_EQ(node["version"], FE_VERSION_FOR_TESTS);
  EXPECT_NE(node["api"].get<std::string>().find("127.0.0.1:"), std::string::npos) << node.dump();
  EXPECT_NE(std::find(node["hypervisors"].begin(), node["hypervisors"].end(), "cloud-hypervisor"),
            node["hypervisors"].end());
  EXPECT_EQ(node["storage"]["backend"], "reflink") << node.dump();
  EXPECT_GT(node["storage"]["free_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(Json::parse(Get("templates/n1/" + web_id)->value)["name"], "web");
  EXPECT_EQ(Json::parse(Get("instances/" + fork_id)->value)["node"], "n1");
  EXPECT_NE(Get("nodes/n1")->lease, 0) << "the node key must hang on a lease";
  EXPECT_EQ(Get("instances/" + fork_id)->lease, 0) << "ownership must outlive the node's lease";

  forkd_->Signal(SIGKILL);
  forkd_->Wait();
  // The lease (2 s) runs out: the node and its templates are gone, its instances still owned.
  EXPECT_TRUE(Eventually("nodes/n1", false, 6s));
  EXPECT_FALSE(Get("templates/n1/" + web_id).has_value());
  EXPECT_TRUE(Get("instances/" + fork_id).has_value());
}

TEST_F(ForkdClusterTest, ASecondForkdGivenALiveNodesNameIsRefusedItUntilThatNodeIsGone) {
  StartNode();
  ASSERT_TRUE(Eventually("nodes/n1", true)) << log();
  const std::string first_api = Json::parse(Get("nodes/n1")->value)["api"];
  ASSERT_NO_FATAL_FAILURE(StartSecondNode("n1"));  // another data root, the same name
  bool refused = false;
  for (int attempt = 0; attempt < 100 && !refused; ++attempt) {
    refused = second_->Log().find("node name 'n1' is held by another live forkd") != std::string::npos;
    if (!refused) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(refused) << second_->Log();
  EXPECT_EQ(Json::parse(Get("nodes/n1")->value)["api"], first_api) << "the live node keeps its entry";
  EXPECT_EQ(second_->client().Get("/v1/healthz").status, 200) << "the refused forkd still serves locally";

  // The first one dies: its claim runs out with its lease and the second takes the name.
  forkd_->Signal(SIGKILL);
  forkd_->Wait();
  bool taken = false;
  for (int attempt = 0; attempt < 150 && !taken; ++attempt) {
    std::optional<KeyValue> node = Get("nodes/n1");
    taken = node.has_value() && Json::parse(node->value)["api"] != first_api;
    if (!taken) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(taken) << second_->Log();
}

TEST_F(ForkdClusterTest, ARestartOfTheSameDataRootTakesItsNameBackAtOnce) {
  StartNode();
  ASSERT_TRUE(Eventually("nodes/n1", true)) << log();
  forkd_->Signal(SIGKILL);
  forkd_->Wait();
  ASSERT_TRUE(Get("node-claims/n1").has_value()) << "the dead node's claim waits for its lease";
  const auto restarted = std::chrono::steady_clock::now();
  StartNode();
  // Its lease (2 s) has not run out, yet the same data root is the same node.
  ASSERT_TRUE(Eventually("nodes/n1", true, 1500ms)) << log();
  EXPECT_LT(std::chrono::steady_clock::now() - restarted, 1500ms);
  EXPECT_EQ(log().find("is held by another live forkd"), std::string::npos) << log();
}

TEST_F(ForkdClusterTest, ACleanStopTakesTheNodeOutAtOnceAndKeepsOwnership) {
  StartNode();
  const std::string web_id = Import("web").value("id", "");
  ASSERT_TRUE(Eventually("templates/n1/" + web_id, true)) << log();
  forkd_->Signal(SIGTERM);
  forkd_->Wait();
  EXPECT_FALSE(Get("nodes/n1").has_value()) << "a clean stop revokes the lease";
  EXPECT_FALSE(Get("templates/n1/" + web_id).has_value());
  EXPECT_TRUE(Get("instances/" + web_id).has_value());
}

TEST_F(ForkdClusterTest, ARestartRemovesWhatTheNodesMetadataNoLongerHasAndAddsWhatIsMissing) {
  StartNode();
  const std::string web_id = Import("web").value("id", "");
  ASSERT_TRUE(Eventually("instances/" + web_id, true)) << log();
  forkd_->Signal(SIGKILL);
  forkd_->Wait();
  // While it was down: an entry of an instance it no longer has, another node's, and a lost one of its own.
  ASSERT_TRUE(client_->Put(std::string(kPrefix) + "instances/i-gone", R"({"node":"n1","name":"gone"})").ok());
  ASSERT_TRUE(client_->Put(std::string(kPrefix) + "instances/i-other", R"({"node":"n2","name":"other"})").ok());
  ASSERT_TRUE(client_->Put(std::string(kPrefix) + "templates/n1/i-gone", R"({"name":"gone"})").ok());
  ASSERT_TRUE(client_->Delete(std::string(kPrefix) + "instances/" + web_id).ok());

  StartNode();
  EXPECT_TRUE(Eventually("instances/" + web_id, true)) << log();
  EXPECT_TRUE(Eventually("instances/i-gone", false)) << log();
  EXPECT_TRUE(Eventually("templates/n1/i-gone", false)) << log();
  EXPECT_TRUE(Get("instances/i-other").has_value()) << "another node's entry is not this node's to remove";
  EXPECT_TRUE(Get("templates/n1/" + web_id).has_value());
}

TEST_F(ForkdClusterTest, ForkdServesLocallyWhileEtcdIsDownAndRegistersWhenItComesBack) {
  etcd_->Kill(0);
  StartNode();  // etcd unreachable: forkd starts and serves anyway
  EXPECT_EQ(Import("web").value("name", ""), "web");
  EXPECT_TRUE(LogEventuallyContains("cluster: publishing node n1 (forkd serves locally meanwhile)")) << log();
  FE_ASSERT_OK(etcd_->Restart(0));
  EXPECT_TRUE(Eventually("nodes/n1", true)) << log();
  EXPECT_TRUE(Get("instances/" + api().Get("/v1/instances/web").json.value("id", "")).has_value());
}

TEST_F(ForkdClusterTest, AnInstanceNameIsUniqueAcrossNodesForCreatesForksAndAcquires) {
  StartNode();
  ASSERT_NO_FATAL_FAILURE(StartSecondNode());
  const ApiClient n2 = second_->client();
  ASSERT_EQ(ImportOn(api(), "web").status, 201);
  ApiResponse taken = ImportOn(n2, "web");
  EXPECT_EQ(StatusAndCode(taken), "409 already_exists");
  EXPECT_NE(taken.body.find("node 'n1'"), std::string::npos) << taken.body;
  EXPECT_EQ(n2.Get("/v1/instances").json["instances"].size(), 0u) << "nothing was made on n2";

  ASSERT_EQ(ImportOn(n2, "other").status, 201);
  EXPECT_EQ(StatusAndCode(n2.Post("/v1/instances/other/fork", Json{{"name", "web"}})), "409 already_exists");
  ASSERT_EQ(n2.Post("/v1/instances/other/fork", Json{{"name", "pair"}, {"count", 2}}).status, 201);
  // A fan-out is all or nothing: pair-2 is n2's, so n1 makes neither pair-1 nor pair-2 nor pair-3.
  EXPECT_EQ(StatusAndCode(api().Post("/v1/instances/web/fork", Json{{"name", "pair"}, {"count", 3}})),
            "409 already_exists");
  EXPECT_EQ(api().Get("/v1/instances").json["instances"].size(), 1u);
  EXPECT_EQ(Get("names/pair-3"), std::nullopt) << "the claims of a refused fan-out are given back";

  ASSERT_EQ(api().Post("/v1/pools", Json{{"name", "p"}, {"template", "web"}, {"min_size", 0}, {"max_size", 1}}).status,
            201);
  EXPECT_EQ(StatusAndCode(api().Post("/v1/pools/p/acquire", Json{{"name", "other"}})), "409 already_exists");
}

TEST_F(ForkdClusterTest, FiftyConcurrentCreatesOfOneNameThroughTwoNodesMakeExactlyOne) {
  StartNode();
  ASSERT_NO_FATAL_FAILURE(StartSecondNode());
  std::atomic<int> created{0}, refused{0}, other{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 50; ++i) {
    clients.emplace_back([&, i] {
      const ApiResponse reply = ImportOn(i % 2 == 0 ? api() : second_->client(), "race");
      if (reply.status == 201) {
        ++created;
      } else if (StatusAndCode(reply) == "409 already_exists") {
        ++refused;
      } else {
        ++other;
      }
    });
  }
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(refused.load(), 49);
  EXPECT_EQ(other.load(), 0);
  const size_t total = api().Get("/v1/instances").json["instances"].size() +
                       second_->client().Get("/v1/instances").json["instances"].size();
  EXPECT_EQ(total, 1u);
}

TEST_F(ForkdClusterTest, ADeletedInstanceGivesItsNameBackToTheCluster) {
  StartNode();
  ASSERT_NO_FATAL_FAILURE(StartSecondNode());
  ASSERT_EQ(ImportOn(api(), "web").status, 201);
  ASSERT_EQ(api().Delete("/v1/instances/web").status, 204);
  EXPECT_TRUE(Eventually("names/web", false)) << log();
  EXPECT_EQ(ImportOn(second_->client(), "web").status, 201);
  EXPECT_EQ(Json::parse(Get("names/web")->value)["node"], "n2");
}

TEST_F(ForkdClusterTest, EveryNodeListsTheLiveNodesAndADeadOneLeavesTheList) {
  StartNode();
  ASSERT_NO_FATAL_FAILURE(StartSecondNode());
  ASSERT_EQ(ImportOn(api(), "web").status, 201);
  auto names = [](const ApiResponse& reply) {
    std::vector<std::string> listed;
    for (const Json& node : reply.json.value("nodes", Json::array())) listed.push_back(node.value("name", ""));
    return listed;
  };
  // n1's template shows once its next round has published it.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  ApiResponse nodes;
  do {
    nodes = second_->client().Get("/v1/nodes");
    ASSERT_EQ(nodes.status, 200) << nodes.body;
  } while (nodes.json["nodes"][0].value("templates", 0) != 1 && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(names(nodes), (std::vector<std::string>{"n1", "n2"}));
  EXPECT_EQ(nodes.json["nodes"][0]["templates"], 1) << nodes.body;
  EXPECT_EQ(nodes.json["nodes"][1]["templates"], 0) << nodes.body;

  Result<ProcessResult> table = RunProcess({ForkctlBinary(), "--socket", second_->socket(), "nodes"});
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  EXPECT_EQ(table->exit_code, 0) << table->output;
  EXPECT_NE(table->output.find("NAME"), std::string::npos) << table->output;
  EXPECT_NE(table->output.find("n1 "), std::string::npos) << table->output;

  forkd_->Signal(SIGKILL);
  forkd_->Wait();
  EXPECT_TRUE(Eventually("nodes/n1", false, 6s));
  EXPECT_EQ(names(second_->client().Get("/v1/nodes")), std::vector<std::string>{"n2"});
}

TEST_F(ForkdClusterTest, AForkdThatIsNoClusterNodeAnswersNodesWith503) {
  StartForkd();
  EXPECT_EQ(StatusAndCode(api().Get("/v1/nodes")), "503 unavailable");
}

}  // namespace
}  // namespace fe::engine::forkd::test
