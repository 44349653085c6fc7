// forkd as a cluster node (engine/cluster/node_publisher.h) against a real etcd on loopback: what it
// publishes, what vanishes with its lease after kill -9, what a clean stop removes at once, what a
// restart reconciles, and that forkd serves locally while etcd is down.
#include <signal.h>

#include <chrono>
#include <thread>

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

  void StartNode() {
    StartForkd({"--cluster-etcd", etcd_->Endpoints(), "--cluster", "t", "--node-name", "n1", "--cluster-lease-ttl-s",
                "2", "--listen-tcp", "127.0.0.1:" + std::to_string(fe::test::FreeTcpPort()), "--token-file",
                TokenFile()});
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

  std::unique_ptr<fe::test::EtcdCluster> etcd_;
  std::optional<cluster::EtcdClient> client_;
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

}  // namespace
}  // namespace fe::engine::forkd::test
